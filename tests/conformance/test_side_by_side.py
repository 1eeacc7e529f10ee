"""Random operation sequences, applied to pg-boss and to ours in lockstep, compared after every step.

Each example gets a queue of a random policy in both libraries; jobs are
numbered by the test (their data), since ids differ. After every operation
both must agree on what was accepted, what was claimed and each job's state.
Where the two differ on purpose (tests/conformance/test_scenarios.py's
DELIBERATE) the sequences stay clear of it: only jobs that never ran are
resumed (ours starts a resumed job over with fresh attempts), and a resume a
policy refuses is compared by its effect (pg-boss raises, ours returns without
the job).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conformance.peers import Ours, Peer, PgBoss

POLICIES = ["standard", "short", "singleton", "stately", "exclusive", "key_strict_fifo"]
KEYS = ["a", "b", None]


def machine_for(ours: Ours, pgboss: PgBoss, fresh_name: Callable[[str], str]) -> type[RuleBasedStateMachine]:
    peers: tuple[Peer, Peer] = (ours, pgboss)

    class SideBySide(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []
            self.sent = 0
            self.ids: list[dict[int, str]] = [{}, {}]  # per peer: job number -> id
            self.ran: set[int] = set()  # jobs ever claimed

        @initialize(policy=st.sampled_from(POLICIES))
        def create(self, policy: str) -> None:
            self.policy = policy
            self.names = [fresh_name(policy) for _ in peers]
            for peer, name in zip(peers, self.names, strict=True):
                peer.create_queue(name, policy=policy, retry_limit=1, retry_delay=0)

        def each(self, action: Callable[[int, Peer, str], Any]) -> list[Any]:
            """The same action on both peers; an exception is an outcome to compare, by kind only."""
            outcomes = []
            for index, (peer, name) in enumerate(zip(peers, self.names, strict=True)):
                try:
                    outcomes.append(action(index, peer, name))
                except Exception:
                    outcomes.append("refused")
            return outcomes

        def numbers(self, index: int, ids: list[str]) -> list[int]:
            by_id = {job_id: n for n, job_id in self.ids[index].items()}
            return sorted(by_id[i] for i in ids)

        def in_state(self, *states: str) -> list[int]:
            return [n for n, view in sorted(self.views(0).items()) if view[0] in states]

        def views(self, index: int) -> dict[int, tuple[str, int | None]]:
            peer, name = peers[index], self.names[index]
            return {
                job.data["n"]: (
                    job.state,
                    job.retry_count if job.state == "active" else None,
                )
                for job in peer.jobs(name)
            }

        @rule(key=st.sampled_from(KEYS))
        def send(self, key: str | None) -> None:
            n = self.sent
            self.sent += 1

            def send(index: int, peer: Peer, name: str) -> bool:
                job_id = peer.send(name, {"n": n}, singleton_key=key)
                if job_id is not None:
                    self.ids[index][n] = job_id
                return job_id is not None

            accepted = self.each(send)
            assert accepted[0] == accepted[1], f"send of job {n} with key {key!r}: ours, pg-boss = {accepted}"

        @rule(batch=st.integers(1, 3))
        def fetch(self, batch: int) -> None:
            claimed = self.each(lambda index, peer, name: self.numbers(index, peer.fetch(name, batch)))
            assert claimed[0] == claimed[1], f"fetch({batch}) claimed (ours, pg-boss): {claimed}"
            self.ran.update(claimed[0])

        @precondition(lambda self: self.in_state("active"))
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            n = data.draw(st.sampled_from(self.in_state("active")))
            self.each(lambda index, peer, name: peer.complete(name, [self.ids[index][n]]))

        @precondition(lambda self: self.in_state("created", "retry", "active"))
        @rule(data=st.data())
        def fail(self, data: st.DataObject) -> None:
            n = data.draw(st.sampled_from(self.in_state("created", "retry", "active")))
            outcome = self.each(lambda index, peer, name: peer.fail(name, [self.ids[index][n]], {"message": "x"}))
            assert outcome[0] == outcome[1]

        @precondition(lambda self: self.in_state("created", "retry", "active"))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            n = data.draw(st.sampled_from(self.in_state("created", "retry", "active")))
            self.each(lambda index, peer, name: peer.cancel(name, [self.ids[index][n]]))

        def never_ran(self, state: str) -> list[int]:
            return [n for n in self.in_state(state) if n not in self.ran]

        @precondition(lambda self: self.never_ran("cancelled"))
        @rule(data=st.data())
        def resume(self, data: st.DataObject) -> None:
            n = data.draw(st.sampled_from(self.never_ran("cancelled")))
            self.each(lambda index, peer, name: peer.resume(name, [self.ids[index][n]]))

        @invariant()
        def same_states(self) -> None:
            if self.names:
                assert self.views(0) == self.views(1), "job states (ours, pg-boss) differ"

    return SideBySide


def test_random_operations_agree_with_pgboss(ours: Ours, pgboss: PgBoss, fresh_name: Callable[[str], str]) -> None:
    run_state_machine_as_test(
        machine_for(ours, pgboss, fresh_name),
        settings=settings(
            max_examples=80,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
