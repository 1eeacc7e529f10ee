"""Looking at what the fetch functions run, as they run it.

The fetch's first statements are PL/pgSQL functions (schema.sql: fetch_jobs, lock_keys,
lock_fifo_window, lock_groups) whose plans are made once per session. EXPLAIN of a call shows
one Function Scan, planning included on a session's first call; `function_statement` prepares
the function's own statement as the function plans it (a generic plan), so that EXPLAIN
(ANALYZE, BUFFERS) shows its walks. Used by the tests and the benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.sql

from jobqueue.sqlfiles import quote_schema


@contextmanager
def function_statement(conn: psycopg.Connection[Any], function: str, schema: str = "jobqueue") -> Iterator[str]:
    """The statement a PL/pgSQL function of the schema runs (RETURN QUERY ...), prepared on `conn`
    as the function runs it: a generic plan, its parameters $1, $2, ... in the function's order.
    Yields what to EXPLAIN: `EXECUTE <name>`, to be completed with the arguments."""
    quote_schema(schema)
    if not re.fullmatch(r"[a-z_]+", function):
        raise ValueError(f"not a function name: {function!r}")
    row = conn.execute(
        "SELECT p.prosrc, p.proargnames[1:p.pronargs], oidvectortypes(p.proargtypes), p.proconfig FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s",
        (schema, function),
    ).fetchone()
    if row is None:
        raise LookupError(f"no function {schema}.{function}: is the schema migrated?")
    source, names, types, config = row
    body = source[source.index("RETURN QUERY") + len("RETURN QUERY") : source.rindex(";")]
    for number, name in enumerate(names, start=1):
        body = re.sub(rf"\b{name}\b", f"${number}", body)
    # The function's own settings (SET clauses: plan_cache_mode, jit, the scans it plans without).
    settings = dict(item.split("=", 1) for item in config or ())
    for setting, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    conn.execute(f"PREPARE {function}_statement ({types}) AS {body}")
    try:
        yield f"EXECUTE {function}_statement"
    finally:
        conn.execute(f"DEALLOCATE {function}_statement")
        for setting in settings:
            conn.execute(f"RESET {psycopg.sql.Identifier(setting).as_string(conn)}")
