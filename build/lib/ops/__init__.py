"""What an operator runs: the `jobs` command (cli.py), against the local stack or a deployment."""
