"""Several worker processes appending to one SQLite file at once.

Three workers (on this 2-core machine, more than the cores) answer concurrent webhooks, opt-outs
and opt-ins on fresh connections. Positions stay dense 1..N in commit order, every acknowledged
request is in the log exactly once at the position it was told, the Merkle tree and every other
check of ``verify`` pass, and more than one worker did the appending.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..server_util import fresh_connections, start_server, stop_server
from .conftest import assert_verifies, msisdn, open_db, sms

pytestmark = pytest.mark.slow

WORKERS = 3
CLIENTS = 8
PER_CLIENT = 100


def append_one(http: httpx.Client, client_no: int, i: int) -> tuple[str, int]:
    """One append on a connection of its own (so any worker may take it): a webhook STOP, an
    opt-out or an opt-in. Returns (idempotency key, acknowledged position)."""
    n = client_no * 1000 + i
    number = msisdn(600_000 + n)
    kind = i % 3
    if kind == 0:
        umid = f"workers-{n}"
        r = http.post("/v1/webhooks/8x8", content=sms(umid, number))
        assert r.status_code == 200, r.text
        return f"8x8:{umid}", r.json()["position"]
    path = "/v1/opt-outs" if kind == 1 else "/v1/opt-ins"
    body = {
        "msisdn": number,
        "subaccount": "ACME_MKT",
        "method": "api",
        "idempotency_key": f"workers-{n}",
    }
    r = http.post(path, json=body)
    assert r.status_code == 201, r.text
    return f"api:workers-{n}", r.json()["position"]


def client(http: httpx.Client, client_no: int) -> list[tuple[str, int]]:
    return [append_one(http, client_no, i) for i in range(PER_CLIENT)]


def test_workers_appending_at_once_keep_one_dense_verifiable_log(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", workers=WORKERS)
    try:
        assert server.key is not None
        with fresh_connections(server) as http, ThreadPoolExecutor(CLIENTS) as pool:
            setup = http.put("/v1/subaccounts/ACME_MKT", json={})
            assert setup.status_code == 200, setup.text
            batches = pool.map(lambda c: client(http, c), range(CLIENTS))
            results = [item for batch in batches for item in batch]
        appended_by = server.counted_by_worker("consent_ledger_appends_total")
    finally:
        stop_server(server)

    acknowledged = dict(results)
    assert len(acknowledged) == CLIENTS * PER_CLIENT
    assert len(set(acknowledged.values())) == len(acknowledged), "two requests, one position"
    conn = open_db(server.db)
    try:
        stored = dict(conn.execute("SELECT key, position FROM log WHERE key IS NOT NULL"))
        all_positions = [p for (p,) in conn.execute("SELECT position FROM log ORDER BY position")]
    finally:
        conn.close()
    assert all_positions == list(range(1, len(all_positions) + 1)), "positions are not dense"
    assert {k: stored.get(k) for k in acknowledged} == acknowledged
    assert len(all_positions) == len(acknowledged) + 1  # + the subaccount's configuration
    assert sum(1 for count in appended_by.values() if count > 0) >= 2, appended_by
    report = assert_verifies(server.db)
    assert report["entries"] == len(all_positions)
    assert report["projections_match_rebuild"] is True
