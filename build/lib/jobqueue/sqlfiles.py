"""Loading of the .sql files: named queries, the schema and the migrations.

The queries live in sql/queries/, one file per concern, named after the module
that runs them (queues.sql for jobqueue/queues.py, working.sql for
jobqueue/working.py, ...), plus fragments.sql for the pieces several statements
share. They are parsed once at import.

In a statement, `{{schema}}` becomes the quoted schema name, which
`quote_schema` only produces for names that match a strict identifier pattern:
the schema name never reaches SQL unchecked. `{{queue_settings}}` becomes the
column list of the queue settings declared in jobqueue/settings.py (declared
names, not input), and `{{<fragment>}}` the text of that fragment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jobqueue.errors import InvalidNameError
from jobqueue.settings import QUEUE_SETTINGS

SQL_DIR = Path(__file__).parent / "sql"
QUERIES_DIR = SQL_DIR / "queries"
MIGRATIONS_DIR = SQL_DIR / "migrations"
PLACEHOLDER = "{{schema}}"
QUEUE_SETTINGS_PLACEHOLDER = "{{queue_settings}}"

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HEADER = re.compile(r"^-- (name|fragment): ([a-z_]+)\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    source: str = ""  # the file it came from, without .sql: the concern, named as its module


def quote_schema(schema: str) -> str:
    if not isinstance(schema, str) or not SCHEMA_NAME.match(schema):
        raise InvalidNameError(
            f"invalid schema name {schema!r}: use 1-63 lowercase letters, digits and underscores, "
            "not starting with a digit"
        )
    return f'"{schema}"'


def parse_sql(text: str, source: str = "") -> tuple[dict[str, NamedQuery], dict[str, NamedQuery]]:
    """The statements (`-- name:`) and the fragments (`-- fragment:`) of one file, each with its description."""
    parts = _HEADER.split(text)
    found: tuple[dict[str, NamedQuery], dict[str, NamedQuery]] = ({}, {})
    # parts = [preamble, kind1, name1, body1, kind2, name2, body2, ...]
    for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        lines = body.strip().splitlines()
        description = lines[0].removeprefix("--").strip() if lines and lines[0].startswith("--") else ""
        if not description:
            raise ValueError(f"{kind} {name!r} has no description line")
        into = found[0] if kind == "name" else found[1]
        if name in into:
            raise ValueError(f"{kind} {name!r} is defined twice")
        sql = body.strip().rstrip(";")
        if kind == "fragment":  # its comment stays here: it would land in the middle of a statement
            sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip()
        into[name] = NamedQuery(name, description, sql, source)
    return found


def parse_queries(text: str) -> dict[str, NamedQuery]:
    """The named statements of one file (a file of fragments has none)."""
    return parse_sql(text)[0]


def load_queries(directory: Path = QUERIES_DIR) -> tuple[dict[str, NamedQuery], dict[str, NamedQuery]]:
    """Every statement and fragment of the files in `directory`; a name may be used once across them."""
    queries: dict[str, NamedQuery] = {}
    fragments: dict[str, NamedQuery] = {}
    for path in sorted(directory.glob("*.sql")):
        file_queries, file_fragments = parse_sql(path.read_text(), path.stem)
        for into, items in ((queries, file_queries), (fragments, file_fragments)):
            for name, item in items.items():
                if name in into:
                    raise ValueError(f"{name!r} is defined in both {into[name].source}.sql and {path.name}")
                into[name] = item
    return queries, fragments


QUERIES, FRAGMENTS = load_queries()


def expand(sql: str, fragments: dict[str, NamedQuery] = FRAGMENTS) -> str:
    """The statement with each fragment's text in place of its {{name}} (fragments may use others)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("schema", "queue_settings"):
            return match.group(0)
        if name not in fragments:
            raise ValueError(f"unknown fragment {{{{{name}}}}}")
        return expand(fragments[name].sql, fragments)

    return _PLACEHOLDER.sub(replace, sql)


@cache
def queries_for(schema: str) -> dict[str, str]:
    quoted = quote_schema(schema)
    columns = ", ".join(QUEUE_SETTINGS)
    return {
        name: expand(query.sql).replace(PLACEHOLDER, quoted).replace(QUEUE_SETTINGS_PLACEHOLDER, columns)
        for name, query in QUERIES.items()
    }


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
