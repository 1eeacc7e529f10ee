"""Loading of the .sql files: named queries, the schema and the migrations.

Queries are parsed once at import. `{{schema}}` in them is replaced by the
quoted schema name, which `quote_schema` only produces for names that match a
strict identifier pattern: the schema name never reaches SQL unchecked.
`{{queue_settings}}` becomes the column list of the queue settings declared in
jobqueue/settings.py (declared names, not input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jobqueue.errors import InvalidNameError
from jobqueue.settings import QUEUE_SETTINGS

SQL_DIR = Path(__file__).parent / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
PLACEHOLDER = "{{schema}}"
QUEUE_SETTINGS_PLACEHOLDER = "{{queue_settings}}"
# `{{resolve_dependents}}` (and the others) in a query becomes the fragment of that name (queries.sql).
FRAGMENTS = ("resolve_dependents", "cancel_below", "keyed_claim_checks")

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    sql: str


def quote_schema(schema: str) -> str:
    if not isinstance(schema, str) or not SCHEMA_NAME.match(schema):
        raise InvalidNameError(
            f"invalid schema name {schema!r}: use 1-63 lowercase letters, digits and underscores, "
            "not starting with a digit"
        )
    return f'"{schema}"'


def parse_queries(text: str) -> dict[str, NamedQuery]:
    parts = _HEADER.split(text)
    queries: dict[str, NamedQuery] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        description = lines[0].removeprefix("--").strip() if lines and lines[0].startswith("--") else ""
        if not description:
            raise ValueError(f"query {name!r} has no description line")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = NamedQuery(name, description, body.strip().rstrip(";"))
    return queries


QUERIES: dict[str, NamedQuery] = parse_queries((SQL_DIR / "queries.sql").read_text())


@cache
def queries_for(schema: str) -> dict[str, str]:
    quoted = quote_schema(schema)
    columns = ", ".join(QUEUE_SETTINGS)

    def expand(sql: str) -> str:
        for fragment in FRAGMENTS:
            sql = sql.replace("{{" + fragment + "}}", QUERIES[f"fragment_{fragment}"].sql)
        return sql.replace(PLACEHOLDER, quoted).replace(QUEUE_SETTINGS_PLACEHOLDER, columns)

    return {name: expand(query.sql) for name, query in QUERIES.items() if not name.startswith("fragment_")}


def schema_sql(schema: str) -> str:
    return (SQL_DIR / "schema.sql").read_text().replace(PLACEHOLDER, quote_schema(schema))


def migrations() -> list[tuple[int, Path]]:
    """The numbered migrations in order; numbers must run 1, 2, 3... without gaps."""
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = _MIGRATION.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_description.sql")
        found.append((int(match.group(1)), path))
    found.sort()
    for expected, (number, path) in enumerate(found, start=1):
        if number != expected:
            raise ValueError(f"migration {path.name!r} breaks the sequence: expected number {expected}")
    return found


def migration_sql(path: Path, schema: str) -> str:
    return path.read_text().replace(PLACEHOLDER, quote_schema(schema))


LATEST_VERSION = len(migrations())
