"""The service's side of the 8x8 round trip: the dispatcher thread, receipts through the
webhook, the review queue and /metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.eightxeight.fake import FakeEightByEight
from api.keys import create_key
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys
from ledger.timefmt import format_time
from projections.eightxeight import replies

API_KEY = "test-8x8-api-key-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeEightByEight]:
    server = FakeEightByEight(api_key=API_KEY, timeout_hold=6.5).start()
    yield server
    server.stop()


def inbound(text: str, umid: str, source: str) -> bytes:
    when = format_time(datetime.now(UTC) - timedelta(seconds=2))
    return json.dumps({
        "namespace": "SMS", "eventType": "inbound_message_received",
        "payload": {"umid": umid, "subAccountId": "ACME_MKT", "timestamp": when,
                    "source": source, "destination": "+6590001111", "body": text},
    }).encode()  # fmt: skip


def until(check: Any, seconds: float = 15.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_replies_receipts_review_and_metrics(
    tmp_path: Path, fake: FakeEightByEight, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENT_LEDGER_8X8_API_KEY", API_KEY)
    monkeypatch.setenv("CONSENT_LEDGER_8X8_URL", fake.url)
    settings = Settings(db=tmp_path / "l.db", log_format="json", checkpoint_interval=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        conn = connect(settings.db)
        key = create_key(SqliteKeys(conn), tenant="default", scopes=["ingest", "review", "audit"])  # type: ignore[list-item]
        conn.close()
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ledger = client.app.state.services.ledger
        ledger.configure_subaccount("default", "ACME_MKT", actor="t")
        text = "ACME: no more messages. Reply START to rejoin."
        replies.configure_replies(ledger, "default", "ACME_MKT", actor="t", opt_out=text)
        fake.script = ["timeout"]
        r = client.post("/v1/webhooks/8x8", content=inbound("STOP", "u-1", "+6581968289"),
                        headers=auth)  # fmt: skip
        assert r.json()["outcome"] == "opted_out"
        until(lambda: ledger.read_model.outbox_counts().counts.get("reply", {}).get("uncertain"))
        [item] = client.get("/v1/review", headers=auth).json()["items"]
        assert item["kind"] == "reply"
        until(lambda: fake.receipts)
        r = client.post("/v1/webhooks/8x8", content=fake.receipts[0], headers=auth)
        assert r.status_code == 200
        assert "settled" in r.json()["reason"]
        assert client.get("/v1/review", headers=auth).json()["items"] == []
        metrics = client.get("/metrics").text
        assert 'consent_ledger_replies{action="reply",state="sent"} 1.0' in metrics
        assert 'consent_ledger_replies_pending{action="reply"} 0.0' in metrics
        assert "consent_ledger_replies_oldest_pending_age_seconds 0.0" in metrics
        assert API_KEY not in metrics
    assert len(fake.sent()) == 1
