"""The worker: drain one queue within one invocation's time.

fetch a batch -> run the handlers (up to team_size at once) -> complete the
successes and fail the failures, one statement each -> repeat, until the queue
is empty, the job cap is reached or the time left falls below the safety
margin. Each claimed job expires shortly after the invocation's own end, so a
killed invocation's jobs come back within minutes; nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue import DatabaseUnavailableError, Job, JobError, PayloadError, Queue
from jobqueue.options import to_json
from runtime import bootstrap, scale
from runtime.handlers import handler_for
from runtime.jobtypes import Handler
from runtime.observability import logger, metrics
from runtime.settings import WorkerSettings

RemainingMs = Callable[[], int]


@dataclass
class DrainResult:
    queue: str
    fetched: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    unfinished: int = 0  # still running when time ran out: they expire and are retried
    stopped: str = ""  # "empty", "max_jobs" or "time"

    @property
    def work_left(self) -> bool:
        return self.stopped in ("max_jobs", "time")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def invocation(settings: WorkerSettings, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One invocation of a worker function: drain, then start more workers if work is left."""
    logger.append_keys(queue=settings.queue, source=event.get("source", "schedule"))
    queue = bootstrap.ready()
    try:
        result = drain(queue, settings, handler_for(settings.queue), context.get_remaining_time_in_millis)
    except DatabaseUnavailableError as exc:
        # Claimed jobs stay claimed until shortly after this invocation's end, then expire and are retried.
        logger.error(
            "database unavailable; this invocation stops, its claimed jobs will expire and retry",
            extra={"error": str(exc)},
        )
        raise
    response = result.as_dict()
    if result.work_left and event.get("source") != scale.SCALE_OUT:
        backlog = queue.queue_size(settings.queue)
        response["workers_started"] = scale.scale_out(
            context.function_name, settings.queue, backlog, settings.max_jobs, settings.max_concurrency
        )
    logger.info("drained", extra=response)
    return response


def drain(queue: Queue, settings: WorkerSettings, handler: Handler, remaining_ms: RemainingMs) -> DrainResult:
    result = DrainResult(queue=settings.queue)
    with ThreadPoolExecutor(max_workers=settings.team_size, thread_name_prefix="job") as pool:
        while True:
            if result.fetched >= settings.max_jobs:
                result.stopped = "max_jobs"
                break
            left_ms = remaining_ms()
            if left_ms < settings.safety_margin_ms:
                result.stopped = "time"
                break
            # No job may outlive the invocation that claimed it.
            deadline = datetime.now(UTC) + timedelta(milliseconds=left_ms, seconds=settings.expiry_margin_s)
            jobs = queue.fetch(
                settings.queue, min(settings.batch_size, settings.max_jobs - result.fetched), deadline=deadline
            )
            if not jobs:
                result.stopped = "empty"
                break
            result.fetched += len(jobs)
            _run_batch(
                queue,
                settings=settings,
                handler=handler,
                jobs=jobs,
                pool=pool,
                remaining_ms=remaining_ms,
                result=result,
            )
            if result.unfinished:
                result.stopped = "time"
                break
    metrics.add_metric(name="JobsCompleted", unit="Count", value=result.completed)
    metrics.add_metric(name="JobsRetried", unit="Count", value=result.retried)
    metrics.add_metric(name="JobsFailed", unit="Count", value=result.failed)
    return result


def _run_batch(
    queue: Queue,
    *,
    settings: WorkerSettings,
    handler: Handler,
    jobs: list[Job],
    pool: ThreadPoolExecutor,
    remaining_ms: RemainingMs,
    result: DrainResult,
) -> None:
    now = datetime.now(UTC)
    for job in jobs:
        if job.created_on is not None:
            metrics.add_metric(
                name="EnqueueToStartLatency",
                unit="Milliseconds",
                value=max(0.0, (now - job.created_on).total_seconds() * 1000),
            )
    futures: dict[Future[Any], Job] = {pool.submit(_run_one, handler, job): job for job in jobs}
    done: list[tuple[Job, Any]] = []
    failures: list[tuple[Job, BaseException]] = []
    pending = set(futures)
    while pending:
        # Wait no longer than the invocation can afford: what is still running
        # then is left to expire, never completed or failed by guesswork.
        budget_s = (remaining_ms() - settings.safety_margin_ms / 2) / 1000
        if budget_s <= 0:
            break
        finished, pending = wait(pending, timeout=budget_s, return_when=FIRST_COMPLETED)
        for future in finished:
            job = futures[future]
            error = future.exception()
            if error is None:
                output = future.result()
                try:
                    if output is not None:
                        to_json(output, "output", queue.max_payload_bytes)
                except PayloadError as exc:
                    # A handler bug, not a passing fault: retrying would fail the same way.
                    failures.append(
                        (job, JobError(f"handler returned an unstorable output: {exc}", should_retry=False))
                    )
                else:
                    done.append((job, output))
            else:
                failures.append((job, error))
    result.unfinished += len(pending)
    for future in pending:
        logger.warning(
            "job still running when the invocation's time ran out; it will expire and be retried",
            extra={"queue": settings.queue, "job_id": futures[future].id},
        )
    if done:
        result.completed += len(queue.complete(settings.queue, [j for j, _ in done], outputs=[o for _, o in done]))
    if failures:
        outcome = queue.fail(
            settings.queue,
            [j for j, _ in failures],
            errors=[_describe(e) for _, e in failures],
            retryable=[not (isinstance(e, JobError) and not e.should_retry) for _, e in failures],
        )
        result.retried += len(outcome.retried)
        result.failed += len(outcome.failed)


def _run_one(handler: Handler, job: Job) -> Any:
    started = time.perf_counter()
    # Handlers run in threads: the job's keys go on this thread's log lines only.
    logger.thread_safe_append_keys(queue=job.name, job_id=job.id, attempt=job.attempt)
    try:
        output = handler(job)
    except Exception as exc:
        logger.warning("job failed", extra={"error": str(exc), "error_type": type(exc).__name__})
        raise
    finally:
        metrics.add_metric(name="HandlerDuration", unit="Milliseconds", value=(time.perf_counter() - started) * 1000)
        logger.thread_safe_remove_keys(["queue", "job_id", "attempt"])
    logger.debug("job completed")
    return output


def _describe(error: BaseException) -> dict[str, Any]:
    return {"message": str(error) or type(error).__name__, "type": type(error).__name__}
