"""The contract suite's set-up: every test here runs once per storage engine.

A test in this folder speaks only to the ports (``ledger.store.LogStore``, the read model and
unit of work behind ``ConsentLedger``, the command line): it is written once and holds for every
adapter. Engine internals (pragmas, locks, WAL, triggers) are tested beside their adapter, not
here. The PostgreSQL adapter joins ``ENGINES`` when it exists.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from projections.ledger import ConsentLedger, open_ledger

ENGINES = ("sqlite",)
"""Every storage engine the contract suite runs against."""

Opener = Callable[..., ConsentLedger]


class Engine:
    """One engine: where its database lives, how to open a ledger on it, how to tamper."""

    def __init__(self, name: str, where: Path) -> None:
        self.name = name
        self.location = str(where / "ledger.db")

    def open(self, clock: Callable[[], datetime] | None = None) -> ConsentLedger:
        """A ledger on this engine's database (created on first use)."""
        return open_ledger(self.location) if clock is None else open_ledger(self.location, clock)

    def tamper(self, position: int, data: bytes) -> None:
        """Replace the stored bytes of the entry at ``position`` behind the ledger's back."""
        conn = sqlite3.connect(self.location, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER log_no_update")
            conn.execute("UPDATE log SET entry = ? WHERE position = ?", (data, position))
        finally:
            conn.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """The engine under test, on a fresh database."""
    return Engine(str(request.param), tmp_path)


@pytest.fixture
def ledger(engine: Engine) -> Iterator[ConsentLedger]:
    """A fresh ledger on the engine under test."""
    led = engine.open()
    yield led
    led.close()
