from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobqueue import InvalidNameError, InvalidOptionError, PayloadError
from jobqueue import options as opt
from jobqueue.rows import job_params
from jobqueue.settings import SEND_OPTIONS


def test_start_after_forms() -> None:
    assert opt.start_after(None) == (None, None)
    assert opt.start_after(60) == (None, 60.0)
    assert opt.start_after(timedelta(minutes=1)) == (None, 60.0)
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert opt.start_after(moment) == (moment, None)
    assert opt.start_after("2030-01-01T00:00:00Z") == (moment, None)


@pytest.mark.parametrize("value", [True, -1, 10**9, "soon", "2030-01-01", datetime(2030, 1, 1), [], float("nan")])
def test_bad_start_after(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="start_after"):
        opt.start_after(value)


def test_integer_bounds_are_inclusive() -> None:
    low, high = SEND_OPTIONS["priority"].check.low, SEND_OPTIONS["priority"].check.high  # type: ignore[attr-defined]
    assert opt.integer("priority", low) == low and opt.integer("priority", high) == high
    with pytest.raises(InvalidOptionError, match=f"between {low} and {high}, got {high + 1}"):
        opt.integer("priority", high + 1)


def test_to_json_rejects_and_measures() -> None:
    assert opt.to_json({"a": "é"}) == '{"a":"é"}'
    with pytest.raises(PayloadError, match="6 bytes of JSON, over the limit of 5"):
        opt.to_json("éé", max_bytes=5)  # 2 bytes per é plus quotes
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        opt.to_json(object())


def test_to_json_refuses_a_nul_but_not_the_text_of_its_escape() -> None:
    assert opt.to_json({"a": "\\u0000"}) == '{"a":"\\\\u0000"}'  # backslash, u, 0, 0, 0, 0: stored as is
    assert opt.to_json("\\\\u0000") == '"\\\\\\\\u0000"'  # two backslashes, then the text
    for value in ("\x00", "a\\\x00", {"key\x00": 1}, ["\\\\\x00"]):
        with pytest.raises(PayloadError, match="NUL character"):
            opt.to_json(value)


def test_to_json_refuses_what_cannot_be_encoded_with_its_own_error() -> None:
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested too deeply"):
        opt.to_json(deep)
    with pytest.raises(PayloadError, match="lone surrogate"):
        opt.to_json({"name": "caf\ud800"})


def test_error_payload() -> None:
    assert opt.error_payload(ValueError("x")) == {"message": "x", "type": "ValueError"}
    assert opt.error_payload(KeyError()) == {"message": "KeyError", "type": "KeyError"}
    assert opt.error_payload("plain") == {"message": "plain"}
    assert opt.error_payload({"code": 5}) == {"code": 5}


def test_job_params_leave_unset_options_to_the_queue() -> None:
    params = job_params({"priority": 3})
    assert params["priority"] == 3
    assert params["retry_limit"] is None and params["dead_letter"] is None


@pytest.mark.parametrize("name", ["pods/provision", "health-check", "a.b_c", "x" * 128])
def test_good_queue_names(name: str) -> None:
    assert opt.queue_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "a b", "ä", "/lead", "semi;colon", "quote'", "x" * 129])
def test_bad_queue_names(name: str) -> None:
    with pytest.raises(InvalidNameError):
        opt.queue_name(name)
