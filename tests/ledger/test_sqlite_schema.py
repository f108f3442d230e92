"""Schema introspection of the SQLite adapter (``ledger.sqlite.schema``) on a real database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.sqlite import schema
from ledger.sqlite.connection import connect
from ledger.sqlite.migrate import migrate
from ledger.sqlite.store import RARE_TYPES


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "ledger.db")
    migrate(conn)
    yield conn
    conn.close()


def test_tables_columns_and_keys(conn: sqlite3.Connection) -> None:
    names = schema.table_names(conn)
    assert {"log", "evidence", "tree_nodes", "checkpoints", "schema_migrations"} <= set(names)
    assert schema.columns(conn, "log")[:3] == ["position", "tenant", "key"]
    assert schema.primary_key(conn, "log") == ["position"]
    with pytest.raises(LookupError, match="no table 'nothing'"):
        schema.columns(conn, "nothing")


def test_indexes_carry_the_statement_that_made_them(conn: sqlite3.Connection) -> None:
    found = {i.name: i for i in schema.indexes(conn, "log")}
    rare = found["log_by_rare_type"]
    assert rare.sql is not None
    assert rare.sql.startswith("CREATE INDEX")
    assert RARE_TYPES in rare.sql  # the partial index's condition, verbatim
    assert not rare.unique
    assert any(i.unique for i in found.values())  # (tenant, key)


def test_reading_changes_nothing_on_the_connection(conn: sqlite3.Connection) -> None:
    before = [
        conn.execute(f"PRAGMA {p}").fetchone() for p in ("recursive_triggers", "foreign_keys")
    ]
    schema.table_names(conn)
    schema.indexes(conn, "log")
    after = [conn.execute(f"PRAGMA {p}").fetchone() for p in ("recursive_triggers", "foreign_keys")]
    assert after == before
    assert not conn.in_transaction
