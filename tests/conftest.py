"""Shared test set-up: a hypothesis profile for CI, fixtures for a fresh ledger."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings

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


@pytest.fixture
def ledger(db_path: Path, clock: Clock) -> Iterator[object]:
    from projections.ledger import ConsentLedger

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


PG_ENV = "CONSENT_LEDGER_TEST_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def pg_server() -> str:
    """The test PostgreSQL server's URL (``CONSENT_LEDGER_TEST_PG``); skips the test, visibly,
    when no server answers there — except under ``CI=true``, where that fails it."""
    import psycopg

    url = os.environ.get(PG_ENV, PG_DEFAULT)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server answers at {PG_ENV} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def in_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (added to the libpq ``options``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    options = " ".join([v for k, v in query if k == "options"] + [f"-csearch_path={schema}"])
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A ledger URL on a fresh, empty schema of the test PostgreSQL server (``pg_server``),
    dropped with everything in it after the test."""
    import psycopg

    server = pg_server()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
