"""Secrets: from Secrets Manager in AWS (cached by Powertools), from the environment locally."""

from __future__ import annotations

import os

from jobqueue import ConfigurationError
from runtime.config import secret_max_age


def secret_value(arn: str, *, refresh: bool = False) -> str:
    # Imported here: boto3 costs ~100 ms of cold start, and local runs may not need it.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=secret_max_age(), force_fetch=refresh)
    return (value if isinstance(value, str) else value.decode()).strip()


def secret_or_env(arn_variable: str, env_variable: str, *, required: bool = True) -> str | None:
    """The secret named by $arn_variable, else the value of $env_variable."""
    arn = os.environ.get(arn_variable)
    if arn:
        return secret_value(arn)
    value = os.environ.get(env_variable) or None
    if value is None and required:
        raise ConfigurationError(f"set {arn_variable} (a Secrets Manager secret) or {env_variable}")
    return value
