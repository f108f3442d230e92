"""Reliability test helpers: unique 8x8 webhook bodies, and reading a database from outside.

The database is read through its own read-only SQLite connection (never through the server
under test), so what the tests see is what is durably on disk.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.keys import SCOPES, create_key
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild

from ..server_util import CLI, Server, start_server, stop_server

FIXTURE = Path(__file__).parent.parent / "fixtures" / "8x8" / "inbound-sms-stop.json"
SMS_STOP: dict[str, Any] = json.loads(FIXTURE.read_bytes())
TABLES = ("log", "evidence", "tree_nodes", "consent_facts")


def msisdn(i: int) -> str:
    """The ``i``-th of a million distinct valid Singapore mobile numbers (+6581000000 …)."""
    assert 0 <= i < 1_000_000
    return f"+6581{i:06d}"


def sms(umid: str, sender: str, text: str = "STOP", subaccount: str = "ACME_MKT") -> bytes:
    """An 8x8 inbound-SMS webhook body shaped like the STOP fixture, with fresh identifiers."""
    body = copy.deepcopy(SMS_STOP)
    body["payload"].update(umid=umid, source=sender, body=text, subAccountId=subaccount)
    return json.dumps(body).encode()


def open_db(db: Path) -> sqlite3.Connection:
    """A read-only connection to ``db`` (it never writes, never blocks the writer)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def head(db: Path) -> int:
    """The newest committed position in ``db`` (0 when empty)."""
    conn = open_db(db)
    try:
        return int(conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0])
    finally:
        conn.close()


def log_keys(db: Path) -> Counter[str]:
    """How many log entries carry each idempotency key."""
    conn = open_db(db)
    try:
        return Counter(k for (k,) in conn.execute("SELECT key FROM log WHERE key IS NOT NULL"))
    finally:
        conn.close()


def positions(db: Path) -> list[int]:
    """Every position in the log, in order."""
    conn = open_db(db)
    try:
        return [p for (p,) in conn.execute("SELECT position FROM log ORDER BY position")]
    finally:
        conn.close()


def row_counts(db: Path) -> dict[str, int]:
    """Row counts of the log and the tables written beside it."""
    conn = open_db(db)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def assert_verifies(db: Path) -> dict[str, Any]:
    """Run ``consent-ledger verify`` on ``db``; it must exit 0. Returns its JSON report."""
    done = subprocess.run(
        [str(CLI), "verify", "--db", str(db)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"verify failed:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["ok"] is True
    return report


def assert_projections_match_rebuild(db: Path) -> None:
    """The live projections equal a replay of the log (checked, then rolled back)."""
    ledger = ConsentLedger(db)
    try:
        assert matches_rebuild(ledger)
    finally:
        ledger.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh server with two workers on its own database."""
    running = start_server(tmp_path / "server", workers=2)
    yield running
    stop_server(running)


# -- the app in-process (TestClient) ----------------------------------------------------------
def bearer(key: str) -> dict[str, str]:
    """Headers authenticating with ``key`` as a bearer token."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def keys(client: TestClient, settings: Settings) -> dict[str, str]:  # type: ignore[type-arg]
    """``all`` (tenant ``default``, every scope), ``other`` (tenant ``other``, every scope) and
    ``operator``."""
    conn = connect(settings.db)
    try:
        return {
            "all": create_key(SqliteKeys(conn), tenant="default", scopes=list(SCOPES)),
            "other": create_key(SqliteKeys(conn), tenant="other", scopes=list(SCOPES)),
            "operator": create_key(SqliteKeys(conn), tenant=None, scopes=list(SCOPES)),
        }
    finally:
        conn.close()
