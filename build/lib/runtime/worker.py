"""The worker: drain one queue within one invocation's time, as a pipeline.

TEAM_SIZE handler threads take jobs one at a time from an inbox; the
invocation's own thread keeps them fed (it fetches the next jobs while the
current ones run), collects their outcomes, and completes and fails them in
groups, one statement per group. It claims no more than the team can finish
in the time left (learnt from the handlers' durations so far), and stops
fetching when the queue is empty, the job cap is reached or the time left
falls below the safety margin.

The invocation never waits for a handler beyond its budget: handler threads
are daemons that are never joined, so a handler that never returns is left
behind, its job reported as unfinished. Each claimed job expires shortly
after the invocation's own end, so a job left running, or claimed by an
invocation that was killed, is retried within minutes: nothing is lost.

Metrics are aggregated per invocation on the invocation's thread (counts, and
p50/p99/max of handler duration and enqueue-to-start latency): one EMF blob
per invocation, whatever the number of jobs.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any, Final

from jobqueue import DatabaseUnavailableError, Job, JobError, PayloadError, Queue, Snooze, StopSignal
from jobqueue.options import describe, error_payload, to_json
from jobqueue.settings import GroupConcurrency
from jobqueue.tracking import PROGRESS_EVERY_S, stepped
from runtime import bootstrap, catalog, connection, job_spans, scale
from runtime.config import WorkerSettings
from runtime.handlers import handler_for
from runtime.jobtypes import Handler
from runtime.observability import job_context, logger, metrics

RemainingMs = Callable[[], int]
# Handler durations are learnt as an exponentially weighted average (this weight for the newest).
DURATION_WEIGHT: Final = 0.2
# A finished job is completed (or failed) in the database within this time, or as soon as a
# batch's worth has finished: slow jobs are not left looking active, fast ones finish in groups.
FINISH_WITHIN_S: Final = 0.2
# Running jobs are checked for cancellation this often, once one has run this long: one query
# for all of them (Job.cancel_requested).
SIGNAL_CHECK_S: Final = 1.0
# Fetches a worker makes again, in a row, when a fetch found nothing but the rate window has room.
RATE_RECHECKS: Final = 3
# A transactional handler's transaction: its statements and its idle time bounded by the time left.
BOUND_TRANSACTION: Final = (
    "SELECT set_config('statement_timeout', %s, true), set_config('idle_in_transaction_session_timeout', %s, true)"
)
# What the handlers of each queue have taught this container (average duration, fetch time):
# a warm invocation starts with full batches instead of learning again.
_learnt: dict[str, tuple[float | None, float]] = {}


def forget_learnt() -> None:
    """As a new container: nothing learnt about any queue's handlers yet."""
    _learnt.clear()


@dataclass
class DrainResult:
    queue: str
    fetched: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    snoozed: int = 0  # run again later, no attempt used (a handler raised Snooze)
    unfinished: int = 0  # running when time ran out: they expire and are retried
    released: int = 0  # claimed but never started when time ran out: queued again, no attempt counted
    # "empty", "max_jobs", "time", "database" (lost, or out of time for it) or "rate_limit" (the queue's
    # window stays full for longer than the invocation has left: a later invocation takes the jobs)
    stopped: str = ""
    error: str = ""  # why the database was lost
    elapsed_ms: float = 0.0  # the drain's wall time
    database_ms: float = 0.0  # of which spent in fetch, complete and fail
    rate_limited_ms: float = 0.0  # of which spent waiting for room in the queue's rate limit

    @property
    def work_left(self) -> bool:
        return self.stopped in ("max_jobs", "time")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Outcome:
    job: Job
    output: Any
    error: BaseException | None
    duration_s: float
    completed: bool = False  # completed already, in the handler's transaction (JobType.transactional)


@dataclass(slots=True)
class Request:
    """A handler thread's call on the database (a step's record), run by the invocation's thread,
    the only one that uses the queue; the handler waits for it."""

    run: Callable[[Queue], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class HandlerContext:
    """Job.step and Job.set_progress for the team's handler threads (jobqueue.tracking): a step's
    record goes through the invocation's thread, which stores it before the step returns; progress
    is kept here, the latest value per job, for the invocation's thread to write at most once a
    second, and before the job is finished."""

    def __init__(self, outbox: SimpleQueue[Any], queue_name: str, wait_s: float) -> None:
        self._outbox = outbox
        self._queue_name = queue_name
        self._wait_s = wait_s
        self._steps: dict[str, list[dict[str, Any]]] = {}  # a job's entry is only touched by its thread
        self._progress: dict[str, tuple[Job, Any]] = {}
        self._lock = threading.Lock()
        self.closed = False  # the invocation is over: no more calls are taken

    def _call(self, run: Callable[[Queue], Any]) -> Any:
        request = Request(run)
        if not self.closed:
            self._outbox.put(request)
        if self.closed or not request.done.wait(self._wait_s):
            raise JobError("the invocation ended before the step could be stored")
        if request.error is not None:
            raise request.error
        return request.result

    def step(self, job: Job, name: str, fn: Callable[[], Any]) -> Any:
        call = self._call
        if job.connection is not None:
            # A transactional handler: its steps are stored in its transaction, so that they commit
            # (or roll back) with the writes they made through job.connection.
            in_transaction = connection.queue_on(job.connection)

            def call(run: Callable[[Queue], Any]) -> Any:
                return run(in_transaction)

        steps = self._steps.get(job.id)
        if steps is None:
            steps = self._steps[job.id] = call(lambda queue: queue.job_steps(self._queue_name, job))
        return stepped(
            job, name, fn, steps, lambda entry: call(lambda queue: queue.record_step(self._queue_name, job, entry))
        )

    def set_progress(self, job: Job, value: Any) -> None:
        to_json(value, "progress")  # refused in the handler that set it, not when written
        with self._lock:
            self._progress[job.id] = (job, value)

    def take_progress(self) -> list[tuple[Job, Any]]:
        """The progress set since the last take, the latest per job."""
        if not self._progress:  # no lock for the common case: no handler sets progress
            return []
        with self._lock:
            taken, self._progress = list(self._progress.values()), {}
        return taken

    def take_progress_of(self, job: Job) -> list[tuple[Job, Any]]:
        """The progress `job` set since the last take, if any."""
        if job.id not in self._progress:
            return []
        with self._lock:
            taken = self._progress.pop(job.id, None)
        return [] if taken is None else [taken]

    def forget(self, job: Job) -> None:
        self._steps.pop(job.id, None)


class InTransaction:
    """Runs a transactional job type's handler (JobType.transactional) in a transaction on a
    connection of its own (runtime.connection.handler_pool), which also completes the job: the
    handler's writes (through job.connection) and the completion commit together, or neither (a
    failure rolls the writes back; so does a crash, the transaction never committing). The
    transaction lasts no longer than the invocation: its statements and its idle time are bounded
    by the time left (set for this transaction only, which a pooler in transaction mode allows).
    """

    def __init__(self, queue_name: str, team_size: int, remaining_ms: RemainingMs, context: HandlerContext) -> None:
        self._queue_name = queue_name
        self._team_size = team_size
        self._remaining_ms = remaining_ms
        self._context = context

    def run(self, handler: Handler, job: Job) -> Any:
        left_ms = f"{max(1, self._remaining_ms())}ms"
        with connection.handler_pool(self._team_size).connection() as conn, conn.transaction():
            conn.execute(BOUND_TRANSACTION, (left_ms, left_ms))
            handed = copy.copy(job)
            handed.connection = conn
            output = handler(handed)
            try:
                to_json(output, "output")
            except Exception as exc:
                raise JobError(f"handler returned an unstorable output: {describe(exc)}", should_retry=False) from None
            queue = connection.queue_on(conn)
            if progress := self._context.take_progress_of(job):
                queue.record_progress(self._queue_name, progress)
            if not queue.complete(self._queue_name, [job], outputs=[output]):
                # The attempt ended meanwhile (expired, cancelled): its writes must not count.
                raise JobError("the job's attempt ended before it could be completed; its writes were rolled back")
        return output


class Team:
    """Handler threads fed from an inbox; they report to an outbox and are never waited for."""

    def __init__(self, size: int, handler: Handler, queue_name: str) -> None:
        self.inbox: SimpleQueue[Job | None] = SimpleQueue()
        self.outbox: SimpleQueue[Outcome | Request] = SimpleQueue()
        self.size = size
        self._handler = handler
        self._queue_name = queue_name
        self.in_transaction: InTransaction | None = None  # set before the first job, for transactional job types
        self._threads = [
            threading.Thread(target=self._work, name=f"job-{queue_name}-{n}", daemon=True) for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        inbox, outbox, handler, context = self.inbox, self.outbox, self._handler, job_context
        while (job := inbox.get()) is not None:
            started = time.perf_counter()
            context.job = job  # the job's keys go on this thread's log lines (observability.JobKeys)
            transaction = self.in_transaction
            try:
                with job_spans.processing(self._queue_name, job) as traced:
                    try:
                        # A copy: whatever the handler does to its job (its id, its attempt), the worker
                        # completes or fails the job it claimed. The signal is the same object.
                        output = handler(copy.copy(job)) if transaction is None else transaction.run(handler, job)
                    except Snooze as snooze:  # not a failure: no warning
                        traced("snoozed")
                        outbox.put(Outcome(job, None, snooze, time.perf_counter() - started))
                    except BaseException as exc:  # even SystemExit: a thread that dies would strand its inbox
                        # describe(): an exception whose __str__ raises must not take the thread down too.
                        logger.warning("job failed", extra={"error": describe(exc), "error_type": type(exc).__name__})
                        traced("failed" if _retryable(exc) else "failed for good", exc)
                        outbox.put(Outcome(job, None, exc, time.perf_counter() - started))
                    else:
                        traced("completed")
                        outbox.put(Outcome(job, output, None, time.perf_counter() - started, transaction is not None))
            finally:
                context.job = None

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.inbox.put(job)

    def close(self) -> list[Job]:
        """Stop the threads once they are done; returns the jobs that were never started."""
        unstarted: list[Job] = []
        while True:
            try:
                job = self.inbox.get_nowait()
            except Empty:
                break
            if job is not None:
                unstarted.append(job)
        for _ in self._threads:
            self.inbox.put(None)
        return unstarted


@dataclass
class Observations:
    """What the invocation saw, aggregated on its own thread (never from handler threads)."""

    durations_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def publish(self, result: DrainResult) -> None:
        metrics.add_metric(name="JobsCompleted", unit="Count", value=result.completed)
        metrics.add_metric(name="JobsRetried", unit="Count", value=result.retried)
        metrics.add_metric(name="JobsFailed", unit="Count", value=result.failed)
        if result.unfinished:
            metrics.add_metric(name="JobsUnfinished", unit="Count", value=result.unfinished)
        if result.snoozed:
            metrics.add_metric(name="JobsSnoozed", unit="Count", value=result.snoozed)
        for name, values in (("HandlerDuration", self.durations_ms), ("EnqueueToStartLatency", self.latencies_ms)):
            for suffix, value in summary(values).items():
                metrics.add_metric(name=f"{name}{suffix}", unit="Milliseconds", value=value)


def _retryable(error: BaseException) -> bool:
    """Whether a failure may be retried: unless a JobError says no (a should_retry that cannot
    even be read as true or false leaves the default, retry)."""
    if not isinstance(error, JobError):
        return True
    try:
        return bool(error.should_retry)
    except Exception:
        return True


def summary(values: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of the values (none for no values): the percentiles the queues' history
    records (Queue.history), so that a chart of either reads the same."""
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "P50": round(ordered[last // 2], 3),
        "P95": round(ordered[min(last, math.ceil(0.95 * last))], 3),
        "P99": round(ordered[min(last, math.ceil(0.99 * last))], 3),
    }


class Drain:
    """One invocation's pipeline: fetch ahead, run on the team, finish in groups."""

    def __init__(
        self,
        queue: Queue,
        settings: WorkerSettings,
        handler: Handler,
        remaining_ms: RemainingMs,
        group_concurrency: GroupConcurrency | None = None,
        *,
        transactional: bool = False,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.group_concurrency = group_concurrency
        self.remaining_ms = remaining_ms
        self.result = DrainResult(queue=settings.queue)
        self.observed = Observations()
        self.team = Team(settings.team_size, handler, settings.queue)
        self.in_flight = 0  # submitted to the team, outcome not yet collected
        self.done: list[tuple[Job, Any]] = []
        self.failures: list[tuple[Job, BaseException]] = []
        self.first_pending = 0.0  # when the oldest outcome not yet written came in
        self.database_s = 0.0
        # A handler's duration and one fetch's round trip, learnt as jobs finish.
        self.average_s, self.fetch_s = _learnt.get(settings.queue, (None, 0.005))
        self.fetching = True
        self.waiting_for_room = False  # under group limits: every waiting job's group is full for now
        self.rate_ready_at = 0.0  # under a rate limit: when (monotonic) the full window has room again
        self.rate_rechecks = 0  # fetches again in a row because the window had room after all
        # Jobs the team runs, with when they were submitted: their signals (Job.cancel_requested)
        # are set when they are cancelled meanwhile or the invocation's time is nearly over.
        self.running: dict[str, tuple[Job, float]] = {}
        self.next_signal_check = 0.0
        # What the handlers reach through their jobs (Job.step, Job.set_progress); a handler waits
        # for a step's record no longer than the invocation lasts.
        self.context = HandlerContext(self.team.outbox, settings.queue, max(0.0, remaining_ms() / 1000))
        self.next_progress_write = 0.0
        if transactional:
            self.team.in_transaction = InTransaction(settings.queue, settings.team_size, remaining_ms, self.context)

    # -- how much to claim ------------------------------------------------------------

    def wanted_in_flight(self, left_s: float) -> int:
        """Jobs to hold: one per thread, plus what the team finishes during one fetch, within the time left."""
        team = self.settings.team_size
        if self.average_s is None:
            return team  # nothing learnt yet: one job per thread
        per_job_s = max(self.average_s, 1e-6) / team  # wall time per job with every thread busy
        ahead = min(self.settings.batch_size, max(1, math.ceil(self.fetch_s / per_job_s)))
        affordable = math.floor(left_s / per_job_s)  # what can still finish before the budget ends
        return max(0, min(team + ahead, affordable))

    def fetch(self) -> None:
        settings = self.settings
        if self.result.fetched >= settings.max_jobs:
            self.fetching, self.result.stopped = False, "max_jobs"
            return
        left_ms = self.remaining_ms()
        if left_ms < settings.safety_margin_ms:
            self.fetching, self.result.stopped = False, "time"
            return
        wanted = self.wanted_in_flight((left_ms - settings.safety_margin_ms) / 1000) - self.in_flight
        if wanted <= 0 and self.in_flight == 0:
            # Not even one more job can finish in the time left, as far as the handlers so far tell.
            self.fetching, self.result.stopped = False, "time"
            return
        # Fetch when the team is about to run out, a batch's worth at a time.
        if self.in_flight > settings.team_size or wanted <= 0:
            return
        limit = min(wanted, settings.batch_size, settings.max_jobs - self.result.fetched)
        # No job may outlive the invocation that claimed it.
        deadline = datetime.now(UTC) + timedelta(milliseconds=left_ms, seconds=settings.expiry_margin_s)
        started = time.perf_counter()
        jobs = self.queue.fetch(settings.queue, limit, deadline=deadline, group_concurrency=self.group_concurrency)
        took = time.perf_counter() - started
        self.fetch_s = 0.7 * self.fetch_s + 0.3 * took
        self.database_s += took
        if not jobs:
            self.nothing_fetched()
            return
        self.rate_rechecks = 0
        now = datetime.now(UTC)
        self.observed.latencies_ms += [
            max(0.0, (now - job.created_on).total_seconds() * 1000) for job in jobs if job.created_on is not None
        ]
        self.result.fetched += len(jobs)
        self.in_flight += len(jobs)
        submitted = time.monotonic()
        signal = StopSignal()
        for job in jobs:
            job.signal = signal
            job.context = self.context
            self.running[job.id] = (job, submitted)
        self.team.submit(jobs)

    def nothing_fetched(self) -> None:
        """A fetch claimed nothing: wait for room (a group's, the rate limit's) or stop."""
        if self.group_concurrency is not None and self.in_flight:
            # Jobs may wait whose groups are full, some with our own jobs: fetch again once
            # finished jobs have been written (a group's active count is the database's).
            self.waiting_for_room = True
            return
        wait_s = self.queue.rate_wait(self.settings.queue)
        if wait_s == 0:
            # The window has room again since the fetch that found it full (a start left it): fetch
            # again, a few times at most; what else may hold the jobs back (another fetcher's claim
            # not yet committed, a pause) is not waited for.
            self.rate_rechecks += 1
            if self.rate_rechecks <= RATE_RECHECKS:
                self.rate_ready_at = time.monotonic()
                return
        elif wait_s is not None:
            # The queue's rate limit holds its jobs back: wait for room if the time left allows
            # (fetching meanwhile would only find the window full again), else leave them.
            if wait_s < (self.remaining_ms() - self.settings.safety_margin_ms) / 1000:
                self.rate_ready_at = time.monotonic() + wait_s
                return
            self.fetching, self.result.stopped = False, "rate_limit"
            return
        self.fetching = False
        self.result.stopped = self.result.stopped or "empty"

    def wait_for_rate(self, wait_s: float) -> None:
        """Nothing running and the queue's rate window full: sleep until it has room."""
        started = time.perf_counter()
        time.sleep(wait_s)
        self.result.rate_limited_ms += (time.perf_counter() - started) * 1000

    # -- outcomes ----------------------------------------------------------------

    def serve(self, request: Request) -> None:
        """Run a handler's call on the database (a step's record) and hand back its answer."""
        if self.context.closed:
            request.error = JobError("the invocation ended before the step could be stored")
            request.done.set()
            return
        started = time.perf_counter()
        try:
            request.result = request.run(self.queue)
        except DatabaseUnavailableError as exc:
            request.error = exc
            raise  # the database is lost: the drain stops
        except Exception as exc:  # the handler's to deal with (it fails its job)
            request.error = exc
        finally:
            self.database_s += time.perf_counter() - started
            request.done.set()

    def collect(self, outcome: Outcome | Request) -> None:
        if isinstance(outcome, Request):
            self.serve(outcome)
            return
        self.in_flight -= 1
        self.running.pop(outcome.job.id, None)
        self.context.forget(outcome.job)
        if not self.done and not self.failures:
            self.first_pending = time.monotonic()
        duration = outcome.duration_s
        self.observed.durations_ms.append(duration * 1000)
        average = self.average_s
        self.average_s = duration if average is None else average + DURATION_WEIGHT * (duration - average)
        error = outcome.error
        # Snooze() checks its delay; a subclass or a changed attribute may not have kept it valid.
        if isinstance(error, Snooze) and not Snooze.valid(getattr(error, "seconds", None)):
            error = JobError(f"handler raised Snooze with an invalid delay: {describe(error)}", should_retry=False)
        if error is not None:
            self.failures.append((outcome.job, error))
            return
        if outcome.completed:  # in the handler's own transaction
            self.result.completed += 1
            return
        output = outcome.output
        if output is not None:
            try:
                to_json(output, "output", self.queue.max_payload_bytes)
            except Exception as exc:  # PayloadError, or whatever an odd object's serialisation raised
                # A handler bug, not a passing fault: retrying would fail the same way.
                reason = describe(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: {describe(exc)}"
                unstorable = JobError(f"handler returned an unstorable output: {reason}", should_retry=False)
                self.failures.append((outcome.job, unstorable))
                return
        self.done.append((outcome.job, output))

    def collect_finished(self) -> None:
        """Every outcome already reported, without waiting."""
        outbox = self.team.outbox
        while True:
            try:
                self.collect(outbox.get_nowait())
            except Empty:
                return

    def signal_handlers(self) -> None:
        """Tell running handlers to stop: those whose job was cancelled (one query for all of them,
        and only once a job has run a while), and all when the invocation's time is nearly over."""
        if not self.running:
            return
        now = time.monotonic()
        if self.remaining_ms() < self.settings.safety_margin_ms:
            for job, _ in self.running.values():
                job.signal.everyone = True  # type: ignore[union-attr]
            return
        if now < self.next_signal_check:
            return
        self.next_signal_check = now + SIGNAL_CHECK_S
        long_running = [job for job, since in self.running.values() if now - since >= SIGNAL_CHECK_S]
        if long_running:
            started = time.perf_counter()
            for job_id in self.queue.no_longer_active(long_running):
                job, _ = self.running[job_id]
                job.signal.cancelled.add(job_id)  # type: ignore[union-attr]
            self.database_s += time.perf_counter() - started

    def write_progress(self) -> None:
        """The progress handlers set since the last write, one statement for every job."""
        self.next_progress_write = time.monotonic() + PROGRESS_EVERY_S
        if progress := self.context.take_progress():
            started = time.perf_counter()
            self.queue.record_progress(self.settings.queue, progress)
            self.database_s += time.perf_counter() - started

    def finish_group(self) -> None:
        """Complete the successes and fail the failures collected so far: one statement each (their
        last progress written first)."""
        self.write_progress()
        started = time.perf_counter()
        self._write_outcomes()
        self.database_s += time.perf_counter() - started
        self.waiting_for_room = False  # jobs finished: their groups may have room now

    def _write_outcomes(self) -> None:
        if self.done:
            jobs, outputs = [j for j, _ in self.done], [o for _, o in self.done]
            self.done = []
            self.result.completed += len(self.queue.complete(self.settings.queue, jobs, outputs=outputs))
        snoozes = [(j, e) for j, e in self.failures if isinstance(e, Snooze)]
        if snoozes:
            self.failures = [(j, e) for j, e in self.failures if not isinstance(e, Snooze)]
            by_seconds: dict[float, list[Job]] = {}
            for job, snooze in snoozes:
                by_seconds.setdefault(snooze.seconds, []).append(job)
            for seconds, jobs in by_seconds.items():
                result = self.queue.snooze(self.settings.queue, jobs, seconds, max_snoozes=self.settings.max_snoozes)
                self.result.snoozed += len(result.snoozed)
                self.result.failed += len(result.failed)
        if self.failures:
            failures, self.failures = self.failures, []
            outcome = self.queue.fail(
                self.settings.queue,
                [j for j, _ in failures],
                errors=[error_payload(e) for _, e in failures],
                retryable=[_retryable(e) for _, e in failures],
            )
            self.result.retried += len(outcome.retried)
            self.result.failed += len(outcome.failed)

    # -- the loop ----------------------------------------------------------------

    def run(self) -> DrainResult:
        started = time.perf_counter()
        try:
            return self._run()
        finally:
            self.result.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            self.result.database_ms = round(self.database_s * 1000, 1)
            self.result.rate_limited_ms = round(self.result.rate_limited_ms, 1)

    def _run(self) -> DrainResult:
        settings = self.settings
        outbox = self.team.outbox
        group = settings.batch_size
        lost: DatabaseUnavailableError | None = None
        try:
            while True:
                rate_wait_s = self.rate_ready_at - time.monotonic()
                if self.fetching and not self.waiting_for_room and rate_wait_s <= 0:
                    self.fetch()
                    rate_wait_s = self.rate_ready_at - time.monotonic()
                if self.in_flight == 0:
                    if not self.fetching:
                        break
                    if rate_wait_s > 0:
                        self.wait_for_rate(rate_wait_s)
                    continue
                # Wait for the next outcome no longer than the invocation can afford, nor than
                # the outcomes already in may wait to be written.
                budget_s = (self.remaining_ms() - settings.safety_margin_ms / 2) / 1000
                if budget_s <= 0:
                    break
                pending = len(self.done) + len(self.failures)
                if pending:
                    budget_s = min(budget_s, max(0.0, self.first_pending + FINISH_WITHIN_S - time.monotonic()))
                budget_s = min(budget_s, SIGNAL_CHECK_S)  # wake up to refresh the running jobs' signals
                if self.fetching and rate_wait_s > 0:
                    budget_s = min(budget_s, rate_wait_s)  # fetch as soon as the rate window has room
                try:
                    self.collect(outbox.get(timeout=budget_s))
                    self.collect_finished()
                except Empty:
                    pass
                self.signal_handlers()
                if time.monotonic() >= self.next_progress_write:
                    self.write_progress()
                pending = len(self.done) + len(self.failures)
                if pending and (
                    pending >= group or self.in_flight == 0 or time.monotonic() - self.first_pending >= FINISH_WITHIN_S
                ):
                    self.finish_group()
        except DatabaseUnavailableError as exc:
            lost = exc  # the outcomes not written stay claimed: their jobs expire and are retried
        finally:
            _learnt[settings.queue] = (self.average_s, self.fetch_s)
            self.context.closed = True  # handlers still running are told so by their next step
            self.collect_finished()
            unstarted = self.team.close()
            if lost is None:
                try:
                    self.finish_group()
                    if unstarted:
                        self.result.released = len(self.queue.release(settings.queue, unstarted))
                except DatabaseUnavailableError as exc:
                    lost = exc
            if lost is not None:
                # Nothing more is written: every job claimed and not yet finished in the database
                # (outcomes in hand included) expires and is retried.
                self.in_flight += len(self.done) + len(self.failures)
                self.done, self.failures = [], []
            self.result.unfinished = self.in_flight - self.result.released
            if self.in_flight:
                self.result.stopped = "time"
                logger.warning(
                    "jobs still claimed when the invocation's time ran out",
                    extra={
                        "queue": settings.queue,
                        "running": self.in_flight - len(unstarted),
                        "released": self.result.released,
                        "left_to_expire": self.result.unfinished,
                    },
                )
        if lost is not None:
            self.result.stopped, self.result.error = "database", str(lost)
        return self.result


def drain(
    queue: Queue,
    settings: WorkerSettings,
    handler: Handler,
    remaining_ms: RemainingMs,
    group_concurrency: GroupConcurrency | None = None,
    *,
    transactional: bool = False,
) -> DrainResult:
    pipeline = Drain(queue, settings, handler, remaining_ms, group_concurrency, transactional=transactional)
    result = pipeline.run()
    pipeline.observed.publish(result)
    return result


def invocation(settings: WorkerSettings, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One invocation of a worker function: drain, then start more workers if work is left.

    Every database call ends before the invocation's own end, even on a network that stalls
    without closing (Database.deadline): the drain's last writes get until a quarter of the
    safety margin is left, and the invocation returns, or fails with DatabaseUnavailableError,
    with that quarter to spare.
    """
    logger.append_keys(queue=settings.queue, source=event.get("source", "schedule"))
    remaining_ms = context.get_remaining_time_in_millis
    with bootstrap.calls_within(bootstrap.invocation_deadline_s(context, settings.safety_margin_ms / 4)):
        queue = bootstrap.ready()
        result = drain(
            queue,
            settings,
            handler_for(settings.queue),
            remaining_ms,
            group_limits_for(settings),
            transactional=transactional_for(settings),
        )
        response = result.as_dict()
        if result.stopped == "database":
            # Claimed jobs stay claimed until shortly after this invocation's end, then expire and are retried.
            logger.error(
                "database unavailable; this invocation stops, its claimed jobs will expire and retry", extra=response
            )
            raise DatabaseUnavailableError(result.error)
        if result.work_left:
            response["workers_started"] = continue_draining(queue, settings, event, context.function_name)
    # A log line per invocation: the rate limit's wait only where there was one (most queues have none).
    logger.info("drained", extra={k: v for k, v in response.items() if k != "rate_limited_ms" or v})
    return response


def group_limits_for(settings: WorkerSettings) -> GroupConcurrency | None:
    """The deployment's group limits, else the job type's declared ones (JobType.group_concurrency)."""
    if settings.group_concurrency is not None:
        return settings.group_concurrency
    try:
        return catalog.load().job_type(settings.queue).group_concurrency
    except LookupError:
        return None


def transactional_for(settings: WorkerSettings) -> bool:
    """Whether the queue's job type runs its handler in the transaction that completes its job."""
    try:
        return catalog.load().job_type(settings.queue).transactional
    except LookupError:
        return False


def continue_draining(queue: Queue, settings: WorkerSettings, event: dict[str, Any], function: str) -> int:
    """Start what drains the rest (runtime.scale): a successor, or a root's fan-out if no chain runs yet."""
    if event.get("source") == scale.SCALE_OUT:
        return scale.hand_over(function, settings.queue)
    if queue.queue_size(settings.queue, ["active"], limit=1):
        return 0  # other invocations are at work on this queue: their chains carry on
    # Enough to decide how many to start, without counting a whole backlog.
    backlog = queue.queue_size(settings.queue, limit=settings.max_jobs * settings.max_concurrency)
    return scale.scale_out(function, settings.queue, backlog, settings.max_jobs, settings.max_concurrency)
