"""The fetch functions of schema.sql (fetch_jobs, lock_keys, lock_fifo_window, lock_groups) say
what working.sql's fragments say, and keep one plan per session.

Their bodies are statements with the fragments written out (a migration is a fixed text: it
cannot follow a fragment that changes later). These tests find each fragment, its parameters
named as the functions name them, in every function that uses it: changing a fragment fails
here until a migration redefines the functions the same way.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from jobqueue.sqlfiles import FRAGMENTS, expand

WALKS = ["fetch_floor", "band_from_floor", "above_floor_band", "below_floor_band", "deferred_ready"]
# Each function and the fragments written out in it.
USES: dict[str, list[str]] = {
    "fetch_jobs": [*WALKS, "claim", "claimed_columns"],
    "lock_keys": [*WALKS, "one_active_per_key_free", "key_lock"],
    "lock_fifo_window": WALKS,
    "lock_groups": [*WALKS, "group_lock"],
    "claim_groups": ["claim", "claimed_columns", "keyed_claim_checks"],
}
# A statement's parameter %(x)s (with its cast) and the function's name for it.
PARAMETERS = {
    "name": "queue_name",
    "limit": "batch_size",
    "now": "at_time",
    "deadline": "deadline",
    "window": "window_size",
    "tiers": "tiers",
    "group_limit": "group_limit",
    "group_rate_limit": "group_rate_limit",
    "group_rate_period": "group_rate_period",
    "ids": "ids",
}


def as_in_function(fragment: str) -> str:
    text = expand(FRAGMENTS[fragment].sql).replace("{{schema}}", '"jobqueue"')
    text = re.sub(r"%\((\w+)\)s(::[a-z]+)?", lambda m: PARAMETERS[m.group(1)], text)
    return " ".join(text.split())


def functions(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, list[str] | None]]:
    rows = conn.execute(
        "SELECT proname, prosrc, proconfig FROM pg_proc WHERE pronamespace = 'jobqueue'::regnamespace"
    ).fetchall()
    return {name: (source, config) for name, source, config in rows}


@pytest.mark.parametrize("function", sorted(USES))
def test_a_fetch_function_writes_out_the_fragments_it_uses(conn: psycopg.Connection[Any], function: str) -> None:
    source, _ = functions(conn)[function]
    body = " ".join(source.split())
    for fragment in USES[function]:
        assert as_in_function(fragment) in body, f"{function} does not say what fragment {fragment} says"


@pytest.mark.parametrize("function", sorted(USES))
def test_a_fetch_function_keeps_one_generic_plan_and_never_compiles_it(
    conn: psycopg.Connection[Any], function: str
) -> None:
    _, config = functions(conn)[function]
    # jit=off: on a large queue the estimates pass jit_above_cost, and compiling cost 25 ms a call.
    # No sequential or bitmap scan: a plan made while the statistics say the table is empty would
    # otherwise scan the whole table at every fetch of the session.
    assert config == [
        "plan_cache_mode=force_generic_plan",
        "jit=off",
        "enable_seqscan=off",
        "enable_bitmapscan=off",
    ]


def test_every_fragment_not_used_by_a_statement_is_written_out_in_a_function() -> None:
    from jobqueue.sqlfiles import QUERIES

    texts = [q.sql for q in QUERIES.values()] + [f.sql for f in FRAGMENTS.values()]
    written_out = {name for names in USES.values() for name in names}
    for name in FRAGMENTS:
        assert name in written_out or any("{{" + name + "}}" in text for text in texts), f"fragment {name} is unused"
