"""Shared test set-up: a hypothesis profile for CI, fixtures for a fresh ledger, and a fresh
PostgreSQL schema (``pg_url``, see ``tests/pg_util.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from .pg_util import fresh_schema

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = Path(__file__).parent / "fixtures"


class Clock:
    """A controllable clock: starts at a fixed time, advances 1 ms per reading unless set."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


ENGINES = ["sqlite", "postgresql"]
"""For ``@pytest.mark.parametrize("ledger", ENGINES, indirect=True)``: a test of a feature that
must work on every engine, run on each (``ledger`` is SQLite otherwise)."""


@pytest.fixture
def ledger(request: pytest.FixtureRequest, db_path: Path, clock: Clock) -> Iterator[object]:
    from projections.ledger import ConsentLedger

    if getattr(request, "param", "sqlite") == "postgresql":
        with fresh_schema() as url:
            led = ConsentLedger(url, clock=clock)
            yield led
            led.close()
        return
    led = ConsentLedger(db_path, clock=clock)
    yield led
    led.close()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0: every file mode a test checks is the one the code asks for, not the umask's."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema of this test's own, dropped afterwards; the test is
    skipped when no server answers (failed under ``CI=true``)."""
    with fresh_schema() as url:
        yield url
