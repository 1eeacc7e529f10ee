"""How long a failed job waits before its next attempt.

A pure function of the attempt and the job's options. The database computes
the same thing in `retry_delay_seconds()` (sql/schema.sql) when it fails a
batch in one statement; tests check that both agree.
"""

from __future__ import annotations

MAX_DOUBLINGS = 30
NO_CAP = 2147483647


def retry_delay_seconds(
    retry_count: int,
    retry_delay: int,
    retry_backoff: bool,
    retry_delay_max: int | None,
    jitter: float,
) -> float:
    """Seconds before retry number `retry_count + 1`.

    Without backoff the delay is constant. With backoff it doubles on each
    retry up to `retry_delay_max`, and "equal jitter" (`jitter` in [0, 1))
    keeps half of it fixed and randomises the other half, so jobs that failed
    together do not all come back in the same instant.
    """
    if not retry_backoff:
        return float(retry_delay)
    base = min(float(retry_delay_max or NO_CAP), retry_delay * 2.0 ** min(retry_count, MAX_DOUBLINGS))
    return base * (0.5 + 0.5 * jitter)
