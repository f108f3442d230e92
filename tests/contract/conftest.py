"""The contract suite's set-up: every test here runs once per storage engine.

A test in this folder speaks only to the ports (``ledger.store.LogStore``, the read model and
unit of work behind ``ConsentLedger``, the command line): it is written once and holds for every
adapter. Engine internals (pragmas, locks, WAL, triggers) are tested beside their adapter, not
here. Each PostgreSQL test runs in a schema of its own (``tests/pg_util.py``), and is skipped
with the reason shown when no server answers (failed under ``CI=true``).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from projections.ledger import ConsentLedger, open_ledger

from ..pg_util import create_schema, drop_schema, require_server

ENGINES = ("sqlite", "postgresql")
"""Every storage engine the contract suite runs against."""

Opener = Callable[..., ConsentLedger]


class Engine:
    """One engine: where its database lives, how to open a ledger on it, how to tamper."""

    def __init__(self, name: str, where: Path) -> None:
        self.name = name
        self._schema: str | None = None
        if name == "postgresql":
            self._schema, self.location = create_schema()
        else:
            self.location = str(where / "ledger.db")

    def open(self, clock: Callable[[], datetime] | None = None) -> ConsentLedger:
        """A ledger on this engine's database (created on first use)."""
        return open_ledger(self.location, clock)

    def reset(self) -> None:
        """Make the database empty again (nothing may have it open)."""
        if self._schema is not None:
            drop_schema(self._schema)
            self._schema, self.location = create_schema(self._schema)
            return
        location = Path(self.location)
        for path in location.parent.glob(location.name + "*"):
            path.unlink()

    def tamper(self, position: int, data: bytes) -> None:
        """Replace the stored bytes of the entry at ``position`` behind the ledger's back (as
        an attacker with the database's superuser rights would: its triggers bypassed)."""
        if self._schema is not None:
            with psycopg.connect(self.location, autocommit=True) as conn:
                conn.execute("SET session_replication_role = replica")
                conn.execute("UPDATE log SET entry = %s WHERE position = %s", (data, position))
            return
        sqlite = sqlite3.connect(self.location, isolation_level=None)
        try:
            sqlite.execute("DROP TRIGGER log_no_update")
            sqlite.execute("UPDATE log SET entry = ? WHERE position = ?", (data, position))
        finally:
            sqlite.close()

    def close(self) -> None:
        """Drop this engine's database (PostgreSQL: its schema)."""
        if self._schema is not None:
            drop_schema(self._schema)
            self._schema = None


@contextmanager
def fresh_engine(name: str) -> Iterator[Engine]:
    """An engine on a new, empty database, removed afterwards."""
    if name == "postgresql":
        require_server()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(name, Path(tmp))
        try:
            yield engine
        finally:
            engine.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The engine under test, on a fresh database."""
    if request.param == "postgresql":
        require_server()
    found = Engine(str(request.param), tmp_path)
    yield found
    found.close()


@pytest.fixture
def ledger(engine: Engine) -> Iterator[ConsentLedger]:
    """A fresh ledger on the engine under test."""
    led = engine.open()
    yield led
    led.close()
