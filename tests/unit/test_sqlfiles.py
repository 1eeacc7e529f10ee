from __future__ import annotations

import re

import pytest

from jobqueue.sqlfiles import QUERIES, migrations, parse_queries, queries_for, quote_schema

PY_PARAM = re.compile(r"%\((\w+)\)s")


def test_every_query_has_a_description_and_no_stray_percent() -> None:
    assert len(QUERIES) > 20
    for query in QUERIES.values():
        assert query.description
        # psycopg treats a lone % as a placeholder; queries must only use %(name)s.
        assert "%" not in PY_PARAM.sub("", query.sql), query.name


def test_schema_placeholder_is_replaced_with_a_quoted_name() -> None:
    compiled = queries_for("tenant_a")
    assert '"tenant_a".job' in compiled["fetch"]
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
