"""Secrets from Secrets Manager (moto's server on loopback): the database URL and the API token."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from runtime import connection
from tests.runtime.conftest import FakeContext, event


def test_database_url_from_an_rds_style_secret(
    secrets: Any, dsn: str, load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = dict(item.split("=", 1) for item in dsn.split())
    secret = {
        "engine": "postgres",
        "username": parts["user"],
        "password": "unused-with-trust-auth",
        "host": parts["host"],
        "port": int(parts["port"]),
        "dbname": parts["dbname"],
    }
    arn = secrets.create_secret(Name="jobs/db-rds", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    scheduler = load_function("scheduler")
    result = scheduler.handler(event("schedule.json"), FakeContext())
    assert result["created"] == 0
    assert connection.get_queue().schema_version() >= 1


def test_database_url_from_a_url_secret(secrets: Any, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = secrets.create_secret(Name="jobs/db-url", SecretString=dsn)["ARN"]
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    assert connection.database_url() == dsn


def test_bad_secrets_are_clear_errors_without_the_password() -> None:
    with pytest.raises(ValueError, match="lacks host"):
        connection.url_from_secret(json.dumps({"username": "app", "password": "hunter2-secret"}))
    with pytest.raises(ValueError, match="neither a URL nor JSON") as info:
        connection.url_from_secret("{password: hunter2-secret")
    assert "hunter2" not in str(info.value)


def test_api_token_from_secrets_manager(
    secrets: Any, load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secrets.create_secret(Name="jobs/api-token", SecretString="s3cret-token-from-sm")["ARN"]
    monkeypatch.delenv("API_TOKEN")
    monkeypatch.setenv("API_TOKEN_SECRET_ARN", arn)
    api = load_function("api")
    request = event("api-health.json")
    request["headers"]["authorization"] = "Bearer s3cret-token-from-sm"
    assert api.handler(request, FakeContext())["statusCode"] == 200
    request["headers"]["authorization"] = "Bearer local-dev-token"
    assert api.handler(request, FakeContext())["statusCode"] == 401
