"""How long a failed job waits before its next attempt.

A pure function of the attempt and the job's options. The database computes
the same thing in `retry_delay_seconds()` (sql/schema.sql) when it fails a
batch in one statement; tests check that both agree.
"""

from __future__ import annotations

MAX_DOUBLINGS = 15
NO_CAP = 2147483647


def retry_delay_seconds(
    retry_count: int,
    retry_delay: int,
    retry_backoff: bool,
    retry_delay_max: int | None,
    jitter: float,
) -> float:
    """Seconds before retry number `retry_count + 1`, as pg-boss computes it.

    Without backoff the delay is constant. With backoff retry n waits
    retry_delay * 2^(n-1) times (1 + `jitter`, in [0, 1)): between one and two
    times that, so retry_delay is a minimum (at least 1 s) and jobs that failed
    together do not all come back in the same instant; retry_delay_max caps
    the result after the jitter.
    """
    if not retry_backoff:
        return float(retry_delay)
    delay = max(retry_delay, 1) * 2.0 ** min(retry_count, MAX_DOUBLINGS) * (1 + jitter)
    return min(float(NO_CAP if retry_delay_max is None else retry_delay_max), delay)
