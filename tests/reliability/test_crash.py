"""A crash mid-load loses nothing that was acknowledged (docs/operating.md, Files).

Clients post unique 8x8 webhooks to the real server (two workers) from several threads; the
server's whole process group is killed with SIGKILL while requests are in flight, then restarted
on the same database. Every umid that was answered 200 is in the log exactly once, positions are
dense, ``verify`` passes and the projections equal a rebuild. 8x8 then retries what it never got
an answer for, and everything ends up in the log exactly once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ..server_util import Server, kill_server, start_server, stop_server
from .conftest import (
    assert_projections_match_rebuild,
    assert_verifies,
    log_keys,
    msisdn,
    positions,
    sms,
)

pytestmark = pytest.mark.slow

CLIENTS = 6
MAX_PER_CLIENT = 3000
"""A bound on each client's loop; the kill comes long before it is reached."""
LOAD_BEFORE_KILL_S = 1.5
MIN_ACKNOWLEDGED = 40


@dataclass
class Delivery:
    """What one client sent and which answers it got before the crash."""

    sent: list[str] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)
    """umid -> position, for every 200 answer."""
    errors: int = 0


def post_until_stopped(
    server: Server, client_no: int, stop: threading.Event, out: Delivery
) -> None:
    """Post unique STOP webhooks until ``stop`` is set (or the bound is reached)."""
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        for i in range(MAX_PER_CLIENT):
            if stop.is_set():
                return
            umid = f"crash-{client_no}-{i:05d}"
            out.sent.append(umid)
            try:
                r = http.post("/v1/webhooks/8x8", content=sms(umid, msisdn(client_no * 10_000 + i)))
            except httpx.HTTPError:
                out.errors += 1  # the server died under this request: no answer, no promise
                time.sleep(0.01)
                continue
            if r.status_code == 200:
                answer = r.json()
                assert answer["outcome"] == "opted_out", answer
                out.acknowledged[umid] = answer["position"]


def wait_for_load(deliveries: list[Delivery]) -> None:
    """Let the load run for a while, and until enough requests were acknowledged."""
    started = time.monotonic()
    while time.monotonic() - started < 30:
        done = sum(len(d.acknowledged) for d in deliveries)
        if time.monotonic() - started >= LOAD_BEFORE_KILL_S and done >= MIN_ACKNOWLEDGED:
            return
        time.sleep(0.05)
    pytest.fail("the server acknowledged too few webhooks before the kill")


def assert_log_holds(db: Path, acknowledged: dict[str, int]) -> None:
    """Each acknowledged umid is in the log exactly once, at the position it was given."""
    keys = log_keys(db)
    missing = [u for u in acknowledged if keys[f"8x8:{u}"] != 1]
    assert not missing, f"{len(missing)} acknowledged umids are not in the log once: {missing[:5]}"
    found = positions(db)
    assert found == list(range(1, len(found) + 1)), "positions are not dense"


def test_sigkill_mid_load_loses_no_acknowledged_webhook(tmp_path: Path) -> None:
    directory = tmp_path / "server"
    server = start_server(directory, workers=2)
    assert server.key is not None
    key = server.key
    deliveries = [Delivery() for _ in range(CLIENTS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=post_until_stopped, args=(server, n, stop, d), daemon=True)
        for n, d in enumerate(deliveries)
    ]
    try:
        for t in threads:
            t.start()
        wait_for_load(deliveries)
        kill_server(server)  # mid-load: every client has a request in flight or about to be
        in_flight = sum(len(d.sent) for d in deliveries)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        stop_server(server)
    assert not any(t.is_alive() for t in threads)
    acknowledged = {u: p for d in deliveries for u, p in d.acknowledged.items()}
    sent = [u for d in deliveries for u in d.sent]
    assert len(acknowledged) < in_flight, "the kill did not interrupt the load"

    restarted = start_server(directory, workers=2)
    try:
        assert restarted.key is None, "a restart on the same database must not print a new key"
        assert_log_holds(restarted.db, acknowledged)
        keys = log_keys(restarted.db)
        assert all(keys[f"8x8:{u}"] <= 1 for u in sent)
        assert_verifies(restarted.db)
        assert_projections_match_rebuild(restarted.db)
        redeliver(restarted, key, sent, acknowledged)
    finally:
        stop_server(restarted)
    keys = log_keys(restarted.db)
    assert all(keys[f"8x8:{u}"] == 1 for u in sent), "a retried webhook is missing or doubled"
    assert_log_holds(restarted.db, acknowledged)
    assert_verifies(restarted.db)


def redeliver(server: Server, key: str, sent: list[str], acknowledged: dict[str, int]) -> None:
    """8x8 retries what got no answer (and, here, a sample of what did): every retry is 200;
    an acknowledged umid keeps its position and is a duplicate."""
    unanswered = [u for u in sent if u not in acknowledged]
    sample = sorted(acknowledged)[:: max(1, len(acknowledged) // 50)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
        for umid in unanswered + sample:
            client_no, i = (int(part) for part in umid.split("-")[1:])
            r = http.post("/v1/webhooks/8x8", content=sms(umid, msisdn(client_no * 10_000 + i)))
            assert r.status_code == 200, r.text
            if umid in acknowledged:
                assert r.json()["duplicate"] is True
                assert r.json()["position"] == acknowledged[umid]
