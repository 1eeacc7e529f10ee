"""Queue settings and send options, declared once.

Each option is a key of a TypedDict, annotated with how it is checked (its
type and bounds), its default, and one line of documentation. From these
declarations come: the keyword arguments of `create_queue`, `update_queue`,
`send`, `insert` and `schedule` (typed with `Unpack`, so mypy refuses a
misspelt option), the validation of every value, the defaults a new queue
gets (the SQL has none of its own), the column list of the queue table's
settings in the SQL (`{{queue_settings}}`), and the README's table
(tests/jobqueue/test_settings.py checks that it agrees).

`None` always means "not given": the queue's setting for a send option, the
default for a queue setting.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, TypedDict, get_args, get_origin, get_type_hints

from jobqueue.errors import InvalidNameError, InvalidOptionError

DAY: Final = 86_400


class Policy(StrEnum):
    """How many jobs per singleton key a queue admits (each enforced by a unique index)."""

    STANDARD = "standard"  # no limit
    SHORT = "short"  # at most one queued (created) job per key
    SINGLETON = "singleton"  # at most one active job per key
    STATELY = "stately"  # at most one job per key in each of created, retry and active
    EXCLUSIVE = "exclusive"  # at most one job per key queued or active
    # Every job has a key; a key's jobs run one at a time in the order sent, and a failed job
    # blocks its key until it is retried or deleted.
    KEY_STRICT_FIFO = "key_strict_fifo"


# Policies under which a send can be refused because a job with the key waits.
POLICIES_THAT_REFUSE_SENDS: Final = frozenset({Policy.SHORT, Policy.STATELY, Policy.EXCLUSIVE})
# Policies under which two fetchers may pick jobs of one key: fetch takes one per key.
POLICIES_ONE_ACTIVE_PER_KEY: Final = frozenset({Policy.SINGLETON, Policy.STATELY})

QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}$")
MAX_SINGLETON_KEY: Final = 255


# -- how a value is checked ------------------------------------------------------


class Check:
    """Validates one option's value; `check` returns it normalised or raises InvalidOptionError."""

    def check(self, option: str, value: object) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class Integer(Check):
    low: int
    high: int

    def check(self, option: str, value: object) -> int:
        # bool is an int subclass; retry_limit=True is a bug, not a 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidOptionError(f"{option} must be an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise InvalidOptionError(f"{option} must be between {self.low} and {self.high}, got {value}")
        return value

    def describe(self) -> str:
        return f"{self.low:,} .. {self.high:,}"


@dataclass(frozen=True)
class Duration(Integer):
    """Whole seconds, or a timedelta of whole seconds."""

    def check(self, option: str, value: object) -> int:
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
            if seconds != int(seconds):
                raise InvalidOptionError(f"{option} must be a whole number of seconds, got {value!r}")
            value = int(seconds)
        return super().check(option, value)

    def describe(self) -> str:
        return f"{_seconds(self.low)} .. {_seconds(self.high)}"


@dataclass(frozen=True)
class Boolean(Check):
    def check(self, option: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise InvalidOptionError(f"{option} must be true or false, got {value!r}")
        return value

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class OneOfPolicies(Check):
    def check(self, option: str, value: object) -> Policy:
        if isinstance(value, str) and value in Policy.__members__.values():
            return Policy(value)
        raise InvalidOptionError(f"{option} must be one of {', '.join(Policy)}, got {value!r}")

    def describe(self) -> str:
        return " / ".join(Policy)


@dataclass(frozen=True)
class QueueName(Check):
    role: str = "queue"

    def check(self, option: str, value: object) -> str:
        return queue_name(value, self.role)

    def describe(self) -> str:
        return "a queue name"


@dataclass(frozen=True)
class SingletonKey(Check):
    def check(self, option: str, value: object) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_SINGLETON_KEY:
            raise InvalidOptionError(f"{option} must be a string of 1-{MAX_SINGLETON_KEY} characters, got {value!r}")
        # Stored as text: Postgres takes no NUL, and psycopg cannot encode a lone surrogate.
        if "\x00" in value:
            raise InvalidOptionError(f"{option} contains a NUL character, which Postgres cannot store")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidOptionError(f"{option} contains a lone surrogate, which is not valid Unicode") from None
        return value

    def describe(self) -> str:
        return f"up to {MAX_SINGLETON_KEY} characters"


@dataclass(frozen=True)
class JobId(Check):
    def check(self, option: str, value: object) -> str:
        return job_id(value)

    def describe(self) -> str:
        return "a UUID"


MAX_START_IN: Final = 366 * DAY


@dataclass(frozen=True)
class StartAfter(Check):
    """Seconds from now (int or float), a timedelta, an aware datetime or an ISO 8601 string with a zone.

    Checked to (absolute time, seconds from now): exactly one of them is set.
    """

    def check(self, option: str, value: object) -> tuple[datetime | None, float | None]:
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool):
            raise InvalidOptionError(f"{option} must be seconds, a datetime or an ISO 8601 string, got {value!r}")
        if isinstance(value, int | float):
            if not math.isfinite(value) or not 0 <= value <= MAX_START_IN:
                raise InvalidOptionError(f"{option} in seconds must be between 0 and {MAX_START_IN}, got {value!r}")
            return None, float(value)
        if isinstance(value, datetime):
            return aware(option, value), None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidOptionError(
                    f"{option} {value!r} is not an ISO 8601 date-time (e.g. '2026-01-01T09:00:00Z')"
                ) from None
            return aware(option, parsed), None
        raise InvalidOptionError(f"{option} must be seconds, a datetime or an ISO 8601 string, got {value!r}")

    def describe(self) -> str:
        return "seconds, a timedelta, an aware datetime or ISO 8601 text"


@dataclass(frozen=True)
class Default:
    """The value a new queue takes when the option is not given."""

    value: Any


@dataclass(frozen=True)
class Doc:
    text: str


def _seconds(value: int) -> str:
    if value and value % DAY == 0:
        return f"{value // DAY} day" + ("s" if value // DAY != 1 else "")
    return f"{value:,} s"


# -- the declarations -------------------------------------------------------------

Seconds = int | timedelta


class JobGroup(TypedDict, total=False):
    """A job's group: `id` (required) and an optional `tier` that picks its limit."""

    id: str
    tier: str | None


@dataclass(frozen=True)
class Group(Check):
    def check(self, option: str, value: object) -> JobGroup:
        if not isinstance(value, Mapping) or not set(value) <= {"id", "tier"} or "id" not in value:
            raise InvalidOptionError(f'{option} must be {{"id": ..., "tier": ...}} (tier optional), got {value!r}')
        group: JobGroup = {"id": SingletonKey().check(f"{option} id", value["id"])}
        if value.get("tier") is not None:
            group["tier"] = SingletonKey().check(f"{option} tier", value["tier"])
        return group

    def describe(self) -> str:
        return "{id, tier}"


class RateLimit(TypedDict):
    """At most `limit` jobs started in any `period` seconds."""

    limit: int
    period: int


MAX_RATE_PERIOD: Final = DAY


@dataclass(frozen=True)
class Rate(Check):
    def check(self, option: str, value: object) -> RateLimit:
        if not isinstance(value, Mapping) or set(value) != {"limit", "period"}:
            raise InvalidOptionError(f'{option} must be {{"limit": n, "period": seconds}}, got {value!r}')
        return {
            "limit": Integer(1, 1_000_000).check(f"{option} limit", value["limit"]),
            "period": Duration(1, MAX_RATE_PERIOD).check(f"{option} period", value["period"]),
        }

    def describe(self) -> str:
        return "{limit, period}"


class FairWeights(TypedDict):
    """Round robin with weights: a group of tier t takes `tiers[t]` jobs a turn (1 for a tier not listed)."""

    tiers: dict[str, int]


# A queue's fairness: "fifo", "round_robin", or round robin weighted per tier.
Fairness = str | FairWeights
FAIRNESS_MODES: Final = ("fifo", "round_robin")
MAX_FAIR_WEIGHT: Final = 1000


@dataclass(frozen=True)
class OneOfFairness(Check):
    def check(self, option: str, value: object) -> Fairness:
        if isinstance(value, str) and value in FAIRNESS_MODES:
            return value
        if isinstance(value, Mapping) and set(value) == {"tiers"} and isinstance(value["tiers"], Mapping):
            return {
                "tiers": {
                    SingletonKey().check(f"{option} tier", tier): Integer(1, MAX_FAIR_WEIGHT).check(
                        f"{option} weight of tier {tier!r}", weight
                    )
                    for tier, weight in value["tiers"].items()
                }
            }
        raise InvalidOptionError(
            f'{option} must be "fifo", "round_robin" or {{"tiers": {{tier: weight}}}} (round robin, weighted), '
            f"got {value!r}"
        )

    def describe(self) -> str:
        return "fifo / round_robin / {tiers}"


class OnFinish(TypedDict, total=False):
    """The job a batch sends once every job of it has finished: its queue and its data."""

    name: str
    data: Any


class BatchSpec(TypedDict, total=False):
    """A batch of jobs (Queue.insert's `batch`): its id, and the job to send when all have finished."""

    id: str
    on_finish: OnFinish | None


class GroupLimits(TypedDict, total=False):
    """Per-tier group limits: `default` for groups without a tier (or one not listed)."""

    default: int
    tiers: dict[str, int]


# A fetch's cap on each group's active jobs: one number for every group, or per tier.
GroupConcurrency = int | GroupLimits


class JobSettings(TypedDict, total=False):
    """What a queue sets for its jobs and a single send may override."""

    retry_limit: Annotated[int | None, Integer(0, 1_000), Default(2), Doc("retries after the first attempt")]
    retry_delay: Annotated[Seconds | None, Duration(0, 7 * DAY), Default(0), Doc("wait before a retry")]
    retry_backoff: Annotated[
        bool | None, Boolean(), Default(False), Doc("retry n waits 1x-2x of retry_delay (at least 1 s) times 2^(n-1)")
    ]
    retry_delay_max: Annotated[
        Seconds | None, Duration(1, 30 * DAY), Default(None), Doc("cap of the backoff (none: no cap)")
    ]
    expire_in: Annotated[
        Seconds | None, Duration(1, 7 * DAY), Default(900), Doc("an active job past this is retried or failed")
    ]
    retention: Annotated[
        Seconds | None, Duration(1, 365 * DAY), Default(14 * DAY), Doc("a job not started by then is failed")
    ]
    delete_after: Annotated[
        Seconds | None, Duration(0, 365 * DAY), Default(7 * DAY), Doc("archived jobs are then deleted (0: never)")
    ]
    dead_letter: Annotated[
        str | None,
        QueueName("dead letter queue"),
        Default(None),
        Doc("queue that receives a copy of each finally failed job"),
    ]


class QueueSettings(JobSettings, total=False):
    """A queue's settings (`create_queue`, `update_queue`)."""

    policy: Annotated[
        Policy | str | None, OneOfPolicies(), Default(Policy.STANDARD), Doc("jobs admitted per singleton key")
    ]
    archive_after: Annotated[
        Seconds | None, Duration(0, 30 * DAY), Default(3600), Doc("finished jobs then move to the archive table")
    ]
    archive: Annotated[
        bool | None,
        Boolean(),
        Default(True),
        Doc("false: finished jobs are deleted at archive_after instead (for jobs nobody looks up later)"),
    ]
    rate_limit: Annotated[
        RateLimit | None,
        Rate(),
        Default(None),
        Doc("at most `limit` jobs started in any `period` seconds, by every fetcher together (none: no limit)"),
    ]
    group_rate_limit: Annotated[
        RateLimit | None,
        Rate(),
        Default(None),
        Doc("as rate_limit, for each group (the send option `group`) on its own (none: no limit)"),
    ]
    fairness: Annotated[
        Fairness | None,
        OneOfFairness(),
        Default("fifo"),
        Doc("round_robin: each fetch lets the groups (the send option `group`) take turns, priority first"),
    ]
    partition: Annotated[
        bool | None,
        Boolean(),
        Default(False),
        Doc("true: the queue's jobs get a table of their own (chosen at create_queue, not changed later)"),
    ]


class SendOptions(JobSettings, total=False):
    """Options of one job (`send`, `insert`, `schedule`); unset ones come from the queue."""

    priority: Annotated[int | None, Integer(-1_000_000, 1_000_000), Default(0), Doc("higher runs first")]
    start_after: Annotated[
        int | float | timedelta | datetime | str | None, StartAfter(), Default(None), Doc("when it may start")
    ]
    singleton_key: Annotated[str | None, SingletonKey(), Default(None), Doc("the key policies and throttles use")]
    singleton_seconds: Annotated[
        Seconds | None, Duration(1, 365 * DAY), Default(None), Doc("throttle: one job per slot this long")
    ]
    singleton_next_slot: Annotated[
        bool | None, Boolean(), Default(False), Doc("debounce: a send that finds its slot taken takes the next")
    ]
    id: Annotated[str | uuid.UUID | None, JobId(), Default(None), Doc("the job's id (default: a new UUID v7)")]
    group: Annotated[
        JobGroup | None,
        Group(),
        Default(None),
        Doc("a group, whose jobs group_concurrency and group_rate_limit cap and fairness serves in turn"),
    ]


class NewJob(SendOptions, total=False):
    """One job of `insert`: its data and any send option but singleton_next_slot."""

    data: Any


@dataclass(frozen=True)
class Option:
    """One declared option, read from its annotation."""

    name: str
    check: Check
    default: Any
    doc: str

    def validate(self, value: object) -> Any:
        """The checked value; None stays None ("not given")."""
        return None if value is None else self.check.check(self.name, value)


def _options(declaration: type) -> dict[str, Option]:
    found: dict[str, Option] = {}
    for name, hint in get_type_hints(declaration, include_extras=True).items():
        assert get_origin(hint) is Annotated, f"{declaration.__name__}.{name} is not annotated"
        extras = get_args(hint)[1:]
        check = next(e for e in extras if isinstance(e, Check))
        default = next(e for e in extras if isinstance(e, Default)).value
        doc = next(e for e in extras if isinstance(e, Doc)).text
        found[name] = Option(name, check, default, doc)
    return found


QUEUE_SETTINGS: Final = _options(QueueSettings)
SEND_OPTIONS: Final = _options(SendOptions)


def check_all(declared: Mapping[str, Option], values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Every declared option, checked: given ones validated, the rest None."""
    unknown = set(values) - set(declared)
    if unknown:
        raise InvalidOptionError(
            f"unknown {what}(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(declared))}"
        )
    checked = dict.fromkeys(declared)
    # Only what was given needs checking (validate(None) is None): a batch's jobs give a few options each.
    for name, value in values.items():
        if value is not None:
            checked[name] = declared[name].validate(value)
    return checked


def with_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Queue settings with the declared default wherever one is None."""
    return {
        name: option.default if settings.get(name) is None else settings[name]
        for name, option in QUEUE_SETTINGS.items()
    }


# -- values that are not options --------------------------------------------------


def queue_name(name: object, role: str = "queue") -> str:
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise InvalidNameError(
            f"invalid {role} name {name!r}: use 1-128 characters from letters, digits, '_', '.', '-' and '/', "
            "not starting with '.', '-' or '/'"
        )
    return name


def job_id(value: object) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise InvalidOptionError(f"job id must be a UUID, got {value!r}") from None


def aware(option: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidOptionError(f"{option} must carry a time zone, got the naive datetime {moment.isoformat()}")
    return moment


# -- documentation ------------------------------------------------------------------


def _default_text(option: Option) -> str:
    value = option.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(option.check, Duration) and isinstance(value, int):
        return _seconds(value)
    return str(value)


def reference_table() -> str:
    """The README's table of queue settings and send options (a test keeps the README equal to it)."""
    rows = ["| option | set on | default | accepts | meaning |", "|---|---|---|---|---|"]
    for name in {**QUEUE_SETTINGS, **SEND_OPTIONS}:
        option = QUEUE_SETTINGS.get(name) or SEND_OPTIONS[name]
        where = " and ".join(
            part for part, declared in (("queue", QUEUE_SETTINGS), ("job", SEND_OPTIONS)) if name in declared
        )
        rows.append(f"| `{name}` | {where} | {_default_text(option)} | {option.check.describe()} | {option.doc} |")
    return "\n".join(rows) + "\n"
