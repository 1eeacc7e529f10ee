from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import jobqueue
from jobqueue.models import RUNNER_FIELDS, Job
from jobqueue.sqlfiles import FRAGMENTS, QUERIES, expand, migrations, parse_queries, queries_for, quote_schema

PY_PARAM = re.compile(r"%\((\w+)\)s")
JOBQUEUE = Path(jobqueue.__file__).parent


def _columns(fragment: str) -> list[str]:
    """The names of a fragment's column list: `j.id::text` -> id."""
    text = re.sub(r"\s+", " ", FRAGMENTS[fragment].sql)
    return [column.strip().split(".")[-1].split("::")[0] for column in text.split(",")]


def test_every_query_has_a_description_and_no_stray_percent() -> None:
    assert len(QUERIES) > 20
    for query in QUERIES.values():
        assert query.description
        # psycopg treats a lone % as a placeholder; queries must only use %(name)s.
        assert "%" not in PY_PARAM.sub("", query.sql), query.name


def test_schema_placeholder_is_replaced_with_a_quoted_name() -> None:
    compiled = queries_for("tenant_a")
    assert '"tenant_a".job' in compiled["complete"]
    assert "{{schema}}" not in "".join(compiled.values())


def test_parse_rejects_duplicates_and_missing_descriptions() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;")
    with pytest.raises(ValueError, match="no description"):
        parse_queries("-- name: a\nSELECT 1;")


def test_quote_schema_only_accepts_identifiers() -> None:
    assert quote_schema("jobqueue") == '"jobqueue"'
    for bad in ['a"b', "A", "a-b", "a b", "", "9a"]:
        with pytest.raises(ValueError, match="invalid schema name"):
            quote_schema(bad)


def test_migrations_are_numbered_in_sequence() -> None:
    numbers = [n for n, _ in migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_a_claim_returns_the_first_fields_of_job_in_their_order() -> None:
    fields = [f.name for f in dataclasses.fields(Job)]
    claimed = _columns("claimed_columns")
    assert claimed == fields[: len(claimed)]


def test_a_lookup_returns_every_stored_field_of_job() -> None:
    stored = {f.name for f in dataclasses.fields(Job)} - set(RUNNER_FIELDS)
    assert set(_columns("job_columns")) == stored


def test_the_queue_defaults_name_as_many_columns_as_values() -> None:
    assert len(_columns("queue_default_columns")) == len(_columns("queue_default_values"))


def test_every_placeholder_is_known() -> None:
    # (every fragment is used: tests/jobqueue/test_fetch_functions.py, which knows the functions too)
    for compiled in queries_for("jobqueue").values():
        assert "{{" not in compiled
    with pytest.raises(ValueError, match="unknown fragment"):
        expand("SELECT {{no_such_fragment}}")


def test_each_file_of_queries_is_run_by_the_module_of_its_name() -> None:
    """SQL by concern: a statement lives in the file named after the module that runs it."""
    for query in QUERIES.values():
        source = (JOBQUEUE / f"{query.source}.py").read_text()
        assert f'"{query.name}"' in source, f"{query.name} ({query.source}.sql) is not run by {query.source}.py"
