"""Database.deadline: every call ends in time, also when the network stalls without closing.

The network faults come from a TCP proxy on loopback (tests/netproxy.py): stalled, it keeps the
connections open and forwards nothing, which no TCP timeout notices. The bounds asserted are
upper bounds (a deadline plus slack): a fast machine cannot make them pass wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobqueue import DatabaseUnavailableError, Queue
from tests.netproxy import Proxy

SLACK_S = 1.5  # a call cut at its deadline returns within this


@pytest.fixture
def proxy(dsn: str) -> Iterator[Proxy]:
    parts = dict(item.split("=", 1) for item in dsn.split())
    with Proxy(parts["host"], int(parts["port"])) as running:
        running.conninfo = f"host=127.0.0.1 port={running.port} user={parts['user']} dbname={parts['dbname']}"  # type: ignore[attr-defined]
        yield running


def through(proxy: Proxy) -> Queue:
    return Queue(proxy.conninfo)  # type: ignore[attr-defined]


def test_a_call_on_a_stalled_network_ends_at_the_deadline(proxy: Proxy, conn: psycopg.Connection[Any]) -> None:
    with through(proxy) as queue:
        queue.create_queue("q")
        sent = queue.insert("q", [{"data": n} for n in range(3)])
        proxy.stall()
        started = time.monotonic()
        with queue.db.deadline(1.0), pytest.raises(DatabaseUnavailableError):
            queue.fetch("q", 10)
        assert time.monotonic() - started < 1.0 + SLACK_S
        # Within the block nothing more is tried, not even a new connection.
        proxy.resume()
        accepted = proxy.accepted
        with queue.db.deadline(5.0):
            queue.db._cut_connection(queue.db._armed)  # as if the time were up
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="no connection is opened"):
                queue.fetch("q", 10)
            assert time.monotonic() - started < SLACK_S and proxy.accepted == accepted
        # Afterwards the queue connects again; the jobs the cut fetch may have claimed on the
        # server (it had sent its statement) are active, as after any lost connection.
        active = conn.execute("SELECT count(*) FROM jobqueue.job WHERE state = 'active'").fetchone()[0]  # type: ignore[index]
        left = queue.fetch("q", 10)
        assert len(left) + active == len(sent)
        assert proxy.accepted == accepted + 1


def test_no_connection_is_opened_with_too_little_time_left(proxy: Proxy) -> None:
    with through(proxy) as queue:
        started = time.monotonic()
        with queue.db.deadline(0.5), pytest.raises(DatabaseUnavailableError, match="no connection is opened"):
            queue.fetch("q", 1)
        assert time.monotonic() - started < SLACK_S and proxy.accepted == 0


def test_a_connection_that_stalls_while_opening_gives_up_within_the_deadline(proxy: Proxy) -> None:
    proxy.stall()
    with through(proxy) as queue:
        started = time.monotonic()
        with queue.db.deadline(3.0), pytest.raises(DatabaseUnavailableError, match="cannot connect"):
            queue.fetch("q", 1)
        assert time.monotonic() - started < 3.0 + SLACK_S


def test_a_call_that_finishes_in_time_is_not_disturbed(queue: Queue) -> None:
    queue.create_queue("q")
    queue.send("q", 1)
    with queue.db.deadline(30.0):
        assert [job.data for job in queue.fetch("q", 10)] == [1]
    # The timer is gone with the block: later calls have no deadline.
    queue.send("q", 2)
    assert [job.data for job in queue.fetch("q", 10)] == [2]


def test_a_timer_left_from_an_ended_block_cuts_nothing(proxy: Proxy) -> None:
    """A deadline's timer that fires as its block ends (cancel cannot stop one already running) must
    not cut the connection the queue goes on with, nor set the next block up to fail."""
    with through(proxy) as queue:
        queue.create_queue("q")
        with queue.db.deadline(5.0):
            ended = queue.db._armed
            queue.fetch("q", 1)
        queue.db._cut_connection(ended)  # the ended block's timer, late
        accepted = proxy.accepted
        with queue.db.deadline(5.0):
            assert queue.fetch("q", 1) == []
        assert queue.fetch("q", 1) == [] and proxy.accepted == accepted  # the same connection throughout
