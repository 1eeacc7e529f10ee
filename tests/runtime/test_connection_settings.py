"""The queue connection's settings from the environment: pooler-safe when unset, checked when set."""

from __future__ import annotations

import pytest

from jobqueue import ConfigurationError
from runtime.config import ConnectionSettings


def test_unset_the_connection_suits_a_pooler() -> None:
    settings = ConnectionSettings.from_env({})
    assert settings.prepare_threshold is None  # no server-side prepared statements
    assert settings.statement_timeout_ms is None  # no startup options
    assert settings.connect_timeout == 10


def test_a_direct_connection_may_turn_them_on() -> None:
    settings = ConnectionSettings.from_env({"PREPARE_THRESHOLD": "5", "STATEMENT_TIMEOUT_MS": "30000"})
    assert (settings.prepare_threshold, settings.statement_timeout_ms) == (5, 30000)
    assert ConnectionSettings.from_env({"PREPARE_THRESHOLD": "OFF", "STATEMENT_TIMEOUT_MS": "0"}) == settings.__class__(
        None, None, 10
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("PREPARE_THRESHOLD", "sometimes"), ("STATEMENT_TIMEOUT_MS", "-1"), ("CONNECT_TIMEOUT", "ten")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ConnectionSettings.from_env({name: value})


def test_a_handlers_pool_gets_the_same_settings() -> None:
    assert ConnectionSettings.from_env({}).psycopg_kwargs() == {"prepare_threshold": None, "connect_timeout": 10}
    direct = ConnectionSettings.from_env({"PREPARE_THRESHOLD": "5", "STATEMENT_TIMEOUT_MS": "30000"})
    assert direct.psycopg_kwargs()["options"] == "-c statement_timeout=30000"
