"""Erasure on PostgreSQL, checked in the server's own files: after ``scrub`` the erased text is
found in no file of the schema (tables, TOAST tables, indexes; the old files of the rewritten
tables are emptied too), and a scrub that a transaction older than the erasure would defeat is
refused until that transaction ends (docs/adopting.md §3)."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from ledger.entries import Evidence
from ledger.errors import StoreUnavailable
from ledger.events import ConsentRevoked, EvidenceErased
from ledger.store import Draft, QuarantineRecord
from projections.ledger import ConsentLedger

from ..pg_util import data_files, file_bytes, scrub_when_free


def stop(key: str, text: str) -> Draft:
    return Draft(
        tenant="t",
        key=key,
        subaccount="S",
        msisdn="+6581000001",
        occurred_at=None,
        event=ConsentRevoked(scope="subaccount", keyword="STOP", match="exact",
                             policy="default@1", channel="sms", method="api", actor="x"),
        evidence=Evidence(text=text),
    )  # fmt: skip


def test_scrubbed_text_is_in_no_file_and_an_older_snapshot_defers_the_scrub(pg_url: str) -> None:
    marker = "Quillon-" + secrets.token_hex(8)
    long = secrets.token_urlsafe(6000)  # incompressible: stored out of line, in TOAST chunks
    led = ConsentLedger(pg_url)
    try:
        led.configure_subaccount("t", "S", actor="x")
        kept = [led.append([stop(f"k{n}", f"STOP {n}")])[0].position for n in range(30)]
        erased = [
            led.append([stop("short", f"STOP {marker}")])[0].position,
            led.append([stop("long", f"STOP {long} {marker} {long}")])[0].position,
        ]
        body = led.store.quarantine(
            QuarantineRecord(tenant="t", received_at="2026-01-01T00:00:00.000Z",
                             reason="unreadable", content_type="application/json",
                             body=f'{{"note": "{marker}"}}'.encode(), remote_addr="203.0.113.7",
                             request_id="r")
        )  # fmt: skip
        before = data_files(pg_url)
        assert marker.encode() in file_bytes(before)
        older = psycopg.connect(pg_url, autocommit=True)  # a long read, begun before the erasure
        try:
            older.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            older.execute("SELECT count(*) FROM evidence").fetchone()
            event = EvidenceErased(reason="T-1", actor="x", positions=tuple(erased))
            tombstone = Draft(tenant="t", key="erasure", subaccount=None, msisdn=None,
                              occurred_at=None, event=event)  # fmt: skip
            appended = led.store.erase(erased, "T-1", tombstone, [body])
            assert appended is not None
            with pytest.raises(StoreUnavailable, match="retry"):
                led.store.scrub()
        finally:
            older.close()
        scrub_when_free(led.store)
        after = data_files(pg_url)
        assert marker.encode() not in file_bytes(before + after)
        assert long[:200].encode() not in file_bytes(before + after)
        assert all(content is not None for _, content in led.store.evidence(kept).values())
        assert led.decide("t", "S", "+6581000001").state == "opted_out"
        assert led.maintenance.matches_rebuild()
    finally:
        led.close()
