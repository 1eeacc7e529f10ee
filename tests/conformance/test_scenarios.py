"""Hand-written scenarios, each run against pg-boss and against ours, compared on what a user observes.

A scenario returns its observations (plain data). They must be equal, unless
the scenario is listed in DELIBERATE, where both libraries' observations are
written out with the reason for the difference (the README's "Differences
from pg-boss" lists the same).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.peers import JobView, Ours, Peer, PgBoss

Names = Callable[[str], str]
Scenario = Callable[[Peer, Names], Any]
SCENARIOS: dict[str, Scenario] = {}
README = Path(__file__).parents[2] / "README.md"
YEAR = 365 * 86_400  # a throttle slot no test run crosses the end of


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def by_n(peer: Peer, name: str) -> dict[int, JobView]:
    return {job.data["n"]: job for job in peer.jobs(name) if isinstance(job.data, dict) and "n" in job.data}


def states(peer: Peer, name: str) -> dict[int, str]:
    return {n: job.state for n, job in sorted(by_n(peer, name).items())}


def ns(peer: Peer, name: str, ids: list[str]) -> list[int]:
    """The scenario's job numbers of some job ids (a batch's order is not compared: sorted)."""
    numbers = {job.id: job.data["n"] for job in peer.jobs(name)}
    return sorted(numbers[i] for i in ids)


def make_ready(peer: Peer, name: str) -> None:
    """Jobs waiting for a retry delay are due now: the time passes for this queue only."""
    for job in peer.jobs(name):
        if job.waits_s > 0 and job.state in ("created", "retry"):
            _set_start_after_now(peer, job.id)


def _set_start_after_now(peer: Peer, job_id: str) -> None:
    table = "jobqueue.job" if isinstance(peer, Ours) else "pgboss.job"
    peer.conn.execute(  # type: ignore[attr-defined]
        f"UPDATE {table} SET start_after = now() - interval '1 second' WHERE id = %s", (job_id,)
    )


# --- what is accepted ---------------------------------------------------------------------------


@scenario
def policies_admit_jobs_per_key(peer: Peer, names: Names) -> Any:
    seen = {}
    for policy in ("standard", "short", "singleton", "stately", "exclusive", "key_strict_fifo"):
        q = names(policy)
        peer.create_queue(q, policy=policy, retry_limit=1)
        sent = [peer.send(q, {"n": n}, singleton_key="a") is not None for n in range(2)]
        first = peer.fetch(q, 10)
        sent.append(peer.send(q, {"n": 2}, singleton_key="a") is not None)
        second = peer.fetch(q, 10)
        peer.complete(q, first + second)
        third = peer.fetch(q, 10)
        seen[policy] = {"sent": sent, "fetched": [len(first), len(second), len(third)], "states": states(peer, q)}
    return seen


@scenario
def publish_reaches_every_subscribed_queue(peer: Peer, names: Names) -> Any:
    emails, audit, other = names("emails"), names("audit"), names("other")
    for q in (emails, audit, other):
        peer.create_queue(q)
    event = names("pod-ready")
    peer.subscribe(event, emails)
    peer.subscribe(event, audit)
    peer.subscribe(event, audit)  # again: harmless
    peer.subscribe(names("pod-gone"), other)
    peer.publish(event, {"n": 0}, priority=2)
    peer.unsubscribe(event, audit)
    peer.publish(event, {"n": 1})
    peer.publish(names("nobody-listens"), {"n": 2})
    return {
        label: {n: (job.state, job.priority) for n, job in by_n(peer, q).items()}
        for label, q in (("emails", emails), ("audit", audit), ("other", other))
    }


@scenario
def throttle_and_debounce_slots(peer: Peer, names: Names) -> Any:
    q = names("throttled")
    peer.create_queue(q)
    throttled = [peer.send_throttled(q, {"n": n}, YEAR, "k") is not None for n in range(2)]
    other_key = peer.send_throttled(q, {"n": 2}, YEAR, "other") is not None
    debounced = [peer.send_debounced(q, {"n": n}, YEAR, "d") is not None for n in (3, 4)]
    later = {n: job.waits_s > 3600 for n, job in by_n(peer, q).items()}
    return {"throttled": throttled, "other_key": other_key, "debounced": debounced, "starts_later": later}


@scenario
def a_throttle_slot_outlives_its_job(peer: Peer, names: Names) -> Any:
    q = names("slot")
    peer.create_queue(q, delete_after=3 * 86_400)
    peer.send_throttled(q, {"n": 0}, YEAR, "k")
    peer.complete(q, peer.fetch(q))
    peer.advance(2 * 86_400)  # finished two days ago: archived here, still in pg-boss's job table
    peer.maintain()
    kept = peer.send_throttled(q, {"n": 1}, YEAR, "k") is None
    peer.advance(2 * 86_400)  # past delete_after: deleted, the slot free again
    peer.maintain()
    return {
        "refused_while_kept": kept,
        "accepted_once_deleted": peer.send_throttled(q, {"n": 2}, YEAR, "k") is not None,
    }


@scenario
def payloads_postgres_can_store(peer: Peer, names: Names) -> Any:
    q = names("payload")
    peer.create_queue(q)
    text = {"n": 0, "pattern": "\\u0000", "path": "C:\\new\\u0000"}
    stored = peer.send(q, text) is not None
    try:
        nul = peer.send(q, {"n": 1, "nul": "\x00"}) is not None
    except Exception:
        nul = False
    return {"escape_text_stored": stored, "data": by_n(peer, q)[0].data, "nul_accepted": nul}


@scenario
def key_strict_fifo_runs_a_key_in_order_and_blocks_it_on_failure(peer: Peer, names: Names) -> Any:
    q = names("fifo")
    peer.create_queue(q, policy="key_strict_fifo", retry_limit=1, retry_delay=60)
    try:
        peer.send(q, {"n": -1})
        keyless = "accepted"
    except Exception:
        keyless = "refused"
    ids = [peer.send(q, {"n": n}, singleton_key=key, priority=n) for n, key in enumerate("aabab")]
    rounds = [ns(peer, q, first := peer.fetch(q, 10))]  # each key's first job, whatever the priorities
    peer.complete(q, [i for i in first if i == ids[2]])
    peer.fail(q, [str(ids[0])], {"message": "boom"})  # waits for its retry: key a waits with it
    rounds.append(ns(peer, q, second := peer.fetch(q, 10)))
    peer.complete(q, second)
    make_ready(peer, q)
    rounds.append(ns(peer, q, third := peer.fetch(q, 10)))  # the retry before the jobs sent after it
    peer.fail(q, third, {"message": "boom again"})  # no attempt left: key a blocked
    rounds.append(ns(peer, q, peer.fetch(q, 10)))
    blocked = states(peer, q)
    peer.retry(q, [str(ids[0])])  # unblocks it: job 0 runs first again
    rounds.append(ns(peer, q, peer.fetch(q, 10)))
    return {"keyless": keyless, "rounds": rounds, "blocked_states": blocked}


@scenario
def group_limits_cap_active_jobs_per_group(peer: Peer, names: Names) -> Any:
    """How many jobs of each group each fetch claims (which of a group's jobs: see the README)."""
    q = names("groups")
    peer.create_queue(q)
    for n in range(9):
        group = {"id": f"host-{n % 3}", "tier": "large" if n % 3 == 2 else None}
        peer.send(q, {"n": n}, group={k: v for k, v in group.items() if v is not None})
    limits = {"default": 1, "tiers": {"large": 2}}

    def per_host(ids: list[str]) -> dict[str, int]:
        return dict(sorted(Counter(f"host-{n % 3}" for n in ns(peer, q, ids)).items()))

    rounds = [per_host(first := peer.fetch(q, 10, group_concurrency=limits))]
    rounds.append(per_host(peer.fetch(q, 10, group_concurrency=limits)))  # every group full
    peer.complete(q, first)
    rounds.append(per_host(peer.fetch(q, 10, group_concurrency=limits)))
    return rounds


# --- order and states ---------------------------------------------------------------------------


@scenario
def fetch_order_is_priority_then_age(peer: Peer, names: Names) -> Any:
    q = names("order")
    peer.create_queue(q)
    for n, priority in enumerate([0, 5, 0, 10, 5, -1]):
        peer.send(q, {"n": n}, priority=priority)
    return [ns(peer, q, peer.fetch(q)) for _ in range(6)]


@scenario
def states_after_each_operation(peer: Peer, names: Names) -> Any:
    q = names("states")
    peer.create_queue(q, retry_limit=1)
    for n in range(6):
        peer.send(q, {"n": n})
    peer.fetch(q, 4)
    ids = {job.data["n"]: job.id for job in peer.jobs(q)}
    peer.complete(q, [ids[0]])
    peer.fail(q, [ids[1]], {"message": "boom"})
    peer.cancel(q, [ids[2], ids[4]])  # active, and created
    after_cancel = states(peer, q)
    peer.resume(q, [ids[2], ids[4]])
    peer.fail(q, [ids[5]], {"message": "before it started"})  # a created job
    outputs = {n: job.output for n, job in by_n(peer, q).items() if n in (1, 5)}
    peer.complete(q, [ids[0]])  # completing twice changes nothing
    return {"after_cancel": after_cancel, "end": states(peer, q), "outputs": outputs}


@scenario
def retries_then_dead_letter(peer: Peer, names: Names) -> Any:
    dead, q = names("dead"), names("retries")
    peer.create_queue(dead)
    peer.create_queue(q, retry_limit=2, dead_letter=dead)
    peer.send(q, {"n": 0, "payload": "x"})
    seen = []
    for _ in range(3):
        make_ready(peer, q)
        fetched = peer.fetch(q)
        seen.append({"fetched": len(fetched), "retry_count_at_fetch": by_n(peer, q)[0].retry_count})
        peer.fail(q, fetched, {"message": "boom"})
    final = by_n(peer, q)[0]
    letters = [(job.data, job.state) for job in peer.jobs(dead)]
    return {"attempts": seen, "final": (final.state, final.retry_count), "dead_letters": letters}


@scenario
def retry_delays(peer: Peer, names: Names) -> Any:
    """Whether each wait falls where pg-boss's formula puts it (random jitter compares as a range)."""
    checks = {}
    for label, settings in {
        "constant": {"retry_delay": 5},
        "backoff": {"retry_delay": 10, "retry_backoff": True},
        "backoff_from_zero": {"retry_delay": 0, "retry_backoff": True},
        "backoff_capped": {"retry_delay": 10, "retry_backoff": True, "retry_delay_max": 25},
    }.items():
        q = names(label)
        peer.create_queue(q, retry_limit=4, **settings)
        peer.send(q, {"n": 0})
        results = []
        for retry in range(1, 4):
            make_ready(peer, q)
            peer.fail(q, peer.fetch(q), {"message": "again"})
            wait = by_n(peer, q)[0].waits_s
            if not settings.get("retry_backoff"):
                low = high = float(settings["retry_delay"])
            else:  # retry n: 1x-2x of max(retry_delay, 1) * 2^(n-1), capped after the jitter
                low = max(settings["retry_delay"], 1) * 2 ** (retry - 1)
                high = 2 * low
                cap = settings.get("retry_delay_max")
                low, high = (min(low, cap), min(high, cap)) if cap else (low, high)
            results.append(low - 0.5 <= wait <= high + 0.5)
        checks[label] = results
    return checks


@scenario
def retry_count_right_after_a_failure(peer: Peer, names: Names) -> Any:
    q = names("count")
    peer.create_queue(q, retry_limit=2)
    peer.send(q, {"n": 0})
    peer.fail(q, peer.fetch(q), {"message": "boom"})
    job = by_n(peer, q)[0]
    return (job.state, job.retry_count)


@scenario
def retry_and_resume_of_finished_jobs(peer: Peer, names: Names) -> Any:
    q = names("again")
    peer.create_queue(q, retry_limit=1)
    for n in range(2):
        peer.send(q, {"n": n})
    ids = {job.data["n"]: job.id for job in peer.jobs(q)}
    peer.fetch(q, 2)
    peer.fail(q, [ids[0]], {"message": "boom"})
    make_ready(peer, q)
    peer.fail(q, peer.fetch(q), {"message": "boom again"})  # job 0, its last attempt
    peer.cancel(q, [ids[1]])  # while it runs
    peer.retry(q, [ids[0]])
    peer.resume(q, [ids[1]])
    queued = {n: (job.state, job.retry_count) for n, job in sorted(by_n(peer, q).items())}
    make_ready(peer, q)
    claimed = peer.fetch(q, 2)
    running = {n: (job.state, job.retry_count) for n, job in sorted(by_n(peer, q).items())}
    return {"queued": queued, "claimed": len(claimed), "running": running}


@scenario
def resume_refused_by_the_policy(peer: Peer, names: Names) -> Any:
    q = names("short")
    peer.create_queue(q, policy="short")
    first = peer.send(q, {"n": 0}, singleton_key="k")
    assert first is not None
    peer.cancel(q, [first])
    peer.send(q, {"n": 1}, singleton_key="k")  # the key's one queued job now
    try:
        peer.resume(q, [first])
        raised = False
    except Exception:
        raised = True
    return {"raised": raised, "states": states(peer, q)}


# --- time: expiry, retention, deletion ----------------------------------------------------------


@scenario
def expiry_retries_then_fails(peer: Peer, names: Names) -> Any:
    q = names("expiry")
    peer.create_queue(q, expire_in=60, retry_limit=1)
    peer.send(q, {"n": 0})
    seen = []
    for _ in range(2):
        make_ready(peer, q)
        peer.fetch(q)
        peer.advance(120)
        peer.maintain()
        seen.append(states(peer, q))
    return seen


@scenario
def finished_jobs_are_kept_then_deleted(peer: Peer, names: Names) -> Any:
    short, forever = names("deleted"), names("forever")
    peer.create_queue(short, delete_after=60)
    peer.create_queue(forever, delete_after=0)
    for q in (short, forever):
        peer.send(q, {"n": 0})
        peer.complete(q, peer.fetch(q))
    peer.advance(30)
    peer.maintain()
    before = {q: len(peer.jobs(q)) for q in (short, forever)}
    peer.advance(60)
    peer.maintain()
    after = {q: len(peer.jobs(q)) for q in (short, forever)}
    peer.advance(400 * 86_400)
    peer.maintain()
    return [list(before.values()), list(after.values()), len(peer.jobs(forever))]


@scenario
def queued_jobs_past_retention(peer: Peer, names: Names) -> Any:
    q = names("retention")
    peer.create_queue(q, retention=60)
    peer.send(q, {"n": 0})
    # Past the retention, and past the period within which ours sweeps it (RETENTION_SWEEP_S).
    peer.advance(660)
    peer.maintain()
    return states(peer, q)


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    why: str
    ours: Any
    pgboss: Any


DELIBERATE: dict[str, Difference] = {
    "retry_and_resume_of_finished_jobs": Difference(
        why="retry() of a failed job and resume() of a cancelled one queue it as created with fresh attempts "
        "(retry_count 0); pg-boss puts a retried job in retry and keeps counting, so it may have no attempt "
        "left, and counts the run a cancelled job had as a retry.",
        ours={
            "queued": {0: ("created", 0), 1: ("created", 0)},
            "claimed": 2,
            "running": {0: ("active", 0), 1: ("active", 0)},
        },
        pgboss={
            "queued": {0: ("retry", 1), 1: ("created", 0)},
            "claimed": 2,
            "running": {0: ("active", 2), 1: ("active", 1)},
        },
    ),
    "resume_refused_by_the_policy": Difference(
        why="resume() and retry() that a queue's policy refuses leave the job where it is and return the ids "
        "they did move (the others are not among them), as cancel() does; pg-boss raises.",
        ours={"raised": False, "states": {0: "cancelled", 1: "created"}},
        pgboss={"raised": True, "states": {0: "cancelled", 1: "created"}},
    ),
    "queued_jobs_past_retention": Difference(
        why="a queued job that outlives its retention is failed (visible in failed_jobs, with the reason) "
        "instead of deleted: a job is never dropped silently.",
        ours={0: "failed"},
        pgboss={},
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_observations_as_pgboss(name: str, ours: Ours, pgboss: PgBoss, fresh_name: Names) -> None:
    theirs = SCENARIOS[name](pgboss, fresh_name)
    mine = SCENARIOS[name](ours, fresh_name)
    difference = DELIBERATE.get(name)
    if difference is None:
        assert mine == theirs
        return
    assert mine == difference.ours, "ours no longer behaves as documented"
    if difference.pgboss is not None:
        assert theirs == difference.pgboss, "pg-boss no longer behaves as documented"
    assert mine != theirs, f"{name} is listed as a difference but both behave alike now"


def test_the_readme_lists_every_deliberate_difference() -> None:
    text = README.read_text()
    table = text[text.index("### Differences from pg-boss") :]
    for name in DELIBERATE:
        assert f"`{name}`" in table, f"README's 'Differences from pg-boss' does not list {name}"
