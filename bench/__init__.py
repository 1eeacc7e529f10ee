"""Benchmarks: our queue measured side by side with a raw-SQL ceiling in the same run."""
