"""The pods platform in the local stack: host agents and GitHub on loopback, S3, SES and Secrets
Manager in moto, the hosts' rows, and the demo `make dev` drives (local.platform)."""
