"""A full disk or a read-only database: appends fail cleanly with 503, and the service recovers.

Simulated four ways: SQLite's ``max_page_count`` on the app's writer connection (the database
may not grow: "database or disk is full"), ``query_only`` on it (a read-only database; file
permissions mean nothing to root), a file-size limit on the real server's workers (the WAL cannot
grow: a real I/O error, after which SQLite rolls the whole transaction back by itself), and a
fault injected into a group commit at that same point. Every time: the answer is a 503 problem
with ``Retry-After`` (8x8 retries later), nothing partial is written (log, evidence, tree and
projection row counts unchanged, ``verify`` passes), and once space returns the very same request
succeeds as a new entry and the group-commit writer goes on working.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from ledger.errors import StoreUnavailable
from ledger.events import ConsentRevoked
from ledger.store import Committed, Draft
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild

from ..server_util import Server, fresh_connections
from .conftest import (
    assert_projections_match_rebuild,
    assert_verifies,
    bearer,
    head,
    log_keys,
    msisdn,
    row_counts,
    sms,
)

Client = TestClient  # type: ignore[type-arg]
SQLITE_DEFAULT_MAX_PAGES = 1_073_741_823
KINDS = ["webhook", "opt-out"]


def send(client: Client, key: str, kind: str, n: int) -> tuple[httpx.Response, str]:
    """One append request of ``kind``; returns the answer and the log key it would be under."""
    if kind == "webhook":
        umid = f"disk-{n}"
        body = sms(umid, msisdn(700_000 + n))
        r = client.post("/v1/webhooks/8x8", content=body, headers=bearer(key))
        return r, f"8x8:{umid}"
    body = {"msisdn": msisdn(700_000 + n), "subaccount": "ACME_MKT", "idempotency_key": f"d-{n}"}
    return client.post("/v1/opt-outs", json=body, headers=bearer(key)), f"api:d-{n}"


def appended(r: httpx.Response) -> bool:
    """Whether ``r`` acknowledges a new entry."""
    return r.status_code in (200, 201) and r.json()["duplicate"] is False


def assert_unavailable(r: httpx.Response, *causes: str) -> None:
    """``r`` is a 503 problem that says when to come back and names the request whose log
    lines hold the cause, never the cause itself (the driver's text: ``causes``)."""
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    problem = r.json()
    assert (problem["status"], problem["type"].rsplit("/", 1)[1]) == (503, "store-unavailable")
    assert problem["request_id"] == r.headers["x-request-id"]
    assert not any(c in problem["detail"] for c in causes), problem["detail"]


def writer(client: Client) -> sqlite3.Connection:
    """The app's writer connection (the only one that writes the database)."""
    return client.app.state.services.ledger.store._wconn  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_database_answers_503_writes_nothing_and_recovers(
    client: Client, keys: dict[str, str], kind: str
) -> None:
    db = client.app.state.services.ledger.store.path
    assert send(client, keys["all"], "webhook", 0)[0].status_code == 200  # registers ACME_MKT
    conn = writer(client)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow any more
    for n in range(1, 200):  # what still fits in the pages' free space is written; then full
        before, head_before = row_counts(db), head(db)
        r, key = send(client, keys["all"], kind, n)
        if not appended(r):
            break
    else:
        pytest.fail("the database never filled up")
    assert_unavailable(r, "full")
    assert (row_counts(db), head(db)) == (before, head_before), "a partial write"
    assert key not in log_keys(db)
    again, _ = send(client, keys["all"], kind, n)  # 8x8 retries: still full, still nothing
    assert_unavailable(again, "full")
    assert row_counts(db) == before
    assert_verifies(db)

    conn.execute(f"PRAGMA max_page_count = {SQLITE_DEFAULT_MAX_PAGES}")  # space returns
    retried, _ = send(client, keys["all"], kind, n)
    assert appended(retried), retried.text
    assert retried.json()["position"] == head_before + 1
    assert appended(send(client, keys["all"], kind, n + 1)[0])
    assert log_keys(db)[key] == 1
    assert_verifies(db)


@pytest.mark.parametrize("kind", [*KINDS, "unreadable-webhook"])
def test_a_read_only_database_answers_503_writes_nothing_and_recovers(
    client: Client, keys: dict[str, str], kind: str
) -> None:
    db = client.app.state.services.ledger.store.path
    assert send(client, keys["all"], "webhook", 0)[0].status_code == 200

    def request() -> httpx.Response:
        if kind == "unreadable-webhook":  # it cannot even be quarantined: 503, 8x8 retries
            return client.post("/v1/webhooks/8x8", content=b'{"payl', headers=bearer(keys["all"]))
        return send(client, keys["all"], kind, 1)[0]

    before = row_counts(db)
    writer(client).execute("PRAGMA query_only = ON")
    assert_unavailable(request(), "readonly", "read-only")
    assert_unavailable(request(), "readonly", "read-only")
    assert row_counts(db) == before
    assert_verifies(db)

    writer(client).execute("PRAGMA query_only = OFF")
    r = request()
    assert r.status_code in (200, 201), r.text
    if kind == "unreadable-webhook":
        assert r.json()["outcome"] == "quarantined"
    else:
        assert appended(r)
        assert r.json()["position"] == head(db)
    assert appended(send(client, keys["all"], "opt-out", 2)[0])
    assert_verifies(db)


# -- a transaction SQLite rolled back by itself, in a group commit ------------------------------
class LosesTheTransaction:
    """A projector that, when armed, does what SQLite does on an I/O error or a full disk in
    the middle of a statement: the whole transaction is rolled back, and the statement fails."""

    name = "fault"

    def __init__(self) -> None:
        self.armed_after = -1
        """Fail once this many entries of the group have been applied (-1: never). The store
        may apply a group's entries ticket by ticket or all at once: counted in entries, the
        fault strikes mid-group either way."""

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        if self.armed_after < 0:
            return
        if len(items) > self.armed_after:
            self.armed_after = -1
            conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        self.armed_after -= len(items)

    def reset(self, conn: sqlite3.Connection) -> None:
        pass


def opt_out(n: int) -> Draft:
    return Draft(
        tenant="acme",
        subaccount="ACME_MKT",
        msisdn=msisdn(800_000 + n),
        occurred_at=None,
        event=ConsentRevoked(
            scope="subaccount",
            keyword=None,
            match=None,
            policy=None,
            channel="api",
            method="api",
            actor="test",
        ),
        key=f"fault-{n}",
    )


def append_as_one_group(ledger: ConsentLedger, drafts: list[Draft]) -> list[object]:
    """Append each draft from its own thread, all in one group commit; each thread's result or
    exception, in order."""
    store = ledger.store
    outcomes: list[object] = [None] * len(drafts)

    def run(i: int) -> None:
        try:
            outcomes[i] = store.append([drafts[i]])
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(drafts))]
    with store._write_lock:  # hold the writer until every ticket is queued: one group
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(store.group_commit.pending) < len(drafts):
            assert time.monotonic() < deadline
            time.sleep(0.001)
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_a_transaction_lost_mid_group_fails_every_ticket_and_the_writer_recovers(
    tmp_path: Path,
) -> None:
    """Regression: the store used to run ``ROLLBACK TO`` a savepoint SQLite had already
    discarded; the raw error escaped to one caller (a 500), the others failed an assertion, and
    a ticket applied earlier in the group was answered with a position that was never
    committed — an acknowledged write lost."""
    ledger = ConsentLedger(tmp_path / "ledger.db")
    fault = LosesTheTransaction()
    ledger.store.projectors.append(fault)
    try:
        ledger.configure_subaccount("acme", "ACME_MKT", actor="test")
        before = row_counts(ledger.store.path)
        fault.armed_after = 2  # two tickets are in their savepoints when the third loses it all
        outcomes = append_as_one_group(ledger, [opt_out(n) for n in range(5)])
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert all("nothing was written" in str(o) for o in outcomes)
        assert row_counts(ledger.store.path) == before
        assert not ledger.store._wconn.in_transaction

        again = append_as_one_group(ledger, [opt_out(n) for n in range(5)])
        assert [a[0].stored.position for a in again] == list(range(2, 7))  # type: ignore[index]
        assert matches_rebuild(ledger)
    finally:
        ledger.close()
    assert_verifies(tmp_path / "ledger.db")


def lose_the_transaction(ledger: ConsentLedger) -> None:
    with ledger.store.write_transaction() as conn:
        conn.execute("ROLLBACK")  # what SQLite does by itself on an I/O error
        raise sqlite3.OperationalError("disk I/O error")


def test_a_maintenance_transaction_lost_by_sqlite_reports_the_real_error(
    tmp_path: Path,
) -> None:
    """Regression: ``write_transaction`` (quarantine, rebuild) used to answer a lost transaction
    with "cannot rollback - no transaction is active", hiding the I/O error."""
    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            lose_the_transaction(ledger)
        with ledger.store.write_transaction() as conn:  # and the writer is usable again
            conn.execute("SELECT 1")
        ledger.configure_subaccount("acme", "ACME_MKT", actor="test")
        assert ledger.head() == 1
    finally:
        ledger.close()


# -- a real full disk: the server's workers may not grow any file -------------------------------
def limit_file_size(pids: Callable[[], list[int]], limit: int) -> None:
    for pid in pids():
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def every_worker_has_its_metrics_files(server: Server, http: httpx.Client) -> None:
    """Send requests until every worker has created its Prometheus files (1 MiB each, created
    on first use). The file-size limit below applies to every file a worker writes; the test is
    about the database, so the metrics files must exist before it is lowered."""
    wanted = [f"{kind}_{pid}.db" for pid in server.workers() for kind in ("counter", "histogram")]
    for _ in range(2000):
        if all((server.metrics_dir() / name).exists() for name in wanted):
            return
        assert http.get("/healthz").status_code == 200
    pytest.fail("a worker never answered")


def logged_errors(server: Server) -> list[str]:
    """The exception class of every error the server logged with a traceback."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [
        line["exception"].rstrip().rsplit("\n", 1)[-1].split(":", 1)[0]
        for line in lines
        if "exception" in line
    ]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_the_real_server_answers_503_when_no_file_may_grow_and_recovers(server: Server) -> None:
    db = server.db
    with fresh_connections(server) as http:
        every_worker_has_its_metrics_files(server, http)
        first = http.post("/v1/webhooks/8x8", content=sms("full-0", msisdn(900_000)))
        assert first.status_code == 200, first.text
        before = row_counts(db)
        wal = db.with_name(db.name + "-wal").stat().st_size
        assert server.stderr.stat().st_size < wal // 2  # room left for the log stream
        limit_file_size(server.workers, wal)  # the next commit would append to the WAL
        try:
            body = sms("full-1", msisdn(900_001))
            for _ in range(3):  # whichever worker answers, it cannot write
                assert_unavailable(http.post("/v1/webhooks/8x8", content=body), "I/O", "full")
            assert row_counts(db) == before
        finally:
            limit_file_size(server.workers, resource.RLIM_INFINITY)
        r = http.post("/v1/webhooks/8x8", content=body)
        assert appended(r), r.text
        assert r.json()["position"] == head(db)
        assert appended(http.post("/v1/webhooks/8x8", content=sms("full-2", msisdn(900_002))))
    assert logged_errors(server) == ["ledger.errors.StoreUnavailable"] * 3  # outages, no bugs
    assert_verifies(db)
    assert_projections_match_rebuild(db)
