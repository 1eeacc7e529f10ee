from __future__ import annotations

import itertools
from typing import Any

import psycopg

from jobqueue import retry_delay_seconds


def test_sql_backoff_matches_python(conn: psycopg.Connection[Any]) -> None:
    grid = list(itertools.product([0, 1, 5, 40], [0, 1, 60], [False, True], [None, 1, 300], [0.0, 0.25, 0.999]))
    for count, delay, backoff, cap, jitter in grid:
        (sql_value,) = conn.execute(
            "SELECT jobqueue.retry_delay_seconds(%s, %s, %s, %s, %s)", (count, delay, backoff, cap, jitter)
        ).fetchone() or (None,)
        assert abs(sql_value - retry_delay_seconds(count, delay, backoff, cap, jitter)) < 1e-6
