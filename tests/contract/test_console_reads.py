"""What the compliance console needs of every engine: console sessions, per-tenant review and
quarantine summaries, review filters, and opt-outs and opt-ins per day."""

from __future__ import annotations

import time

from ledger.events import ConsentGranted, ConsentRevoked, ReviewFlagged
from ledger.store import ConsoleSession, Draft, QuarantineRecord
from projections.ledger import ConsentLedger
from projections.read_model import ConsentDay, QuarantineSummary


def _session(token: bytes, expires_at: str) -> ConsoleSession:
    return ConsoleSession(
        token_sha256=token * 32,
        key_id="abcdefabcdef",
        csrf_token="csrf-" + token.hex(),
        created_at="2026-06-01T10:00:00.000Z",
        expires_at=expires_at,
    )


def test_sessions_start_expire_and_end(ledger: ConsentLedger) -> None:
    sessions = ledger.store.sessions()
    live = _session(b"a", "2026-06-01T18:00:00.000Z")
    sessions.start(live, "2026-06-01T10:00:00.000Z")
    assert sessions.get(b"a" * 32, "2026-06-01T17:59:59.999Z") == live
    assert sessions.get(b"a" * 32, "2026-06-01T18:00:00.000Z") is None  # expired
    assert sessions.get(b"b" * 32, "2026-06-01T11:00:00.000Z") is None
    # starting another forgets the expired ones
    sessions.start(_session(b"b", "2026-06-02T18:00:00.000Z"), "2026-06-01T19:00:00.000Z")
    assert sessions.get(b"a" * 32, "2026-06-01T10:00:00.000Z") is None
    assert sessions.end(b"b" * 32)
    assert not sessions.end(b"b" * 32)
    assert sessions.get(b"b" * 32, "2026-06-01T20:00:00.000Z") is None


def _consent(tenant: str, key: str, msisdn: str, granted: bool) -> Draft:
    event = (
        ConsentGranted(scope="subaccount", keyword="START", match="exact", policy="S@1",
                       channel="sms", method="api", actor="data-subject")
        if granted
        else ConsentRevoked(scope="subaccount", keyword="STOP", match="exact", policy="S@1",
                            channel="sms", method="api", actor="data-subject")
    )  # fmt: skip
    return Draft(tenant=tenant, key=key, subaccount="S", msisdn=msisdn,
                 occurred_at="2026-01-01T00:00:00.000Z", event=event)  # fmt: skip


def _flag(tenant: str, key: str, subaccount: str) -> Draft:
    event = ReviewFlagged(keyword="STOP", match="contains", policy=f"{subaccount}@1",
                          channel="sms", method="api", actor="data-subject",
                          reason="contains STOP")  # fmt: skip
    return Draft(tenant=tenant, key=key, subaccount=subaccount, msisdn="+6581968289",
                 occurred_at="2026-01-01T00:00:00.000Z", event=event)  # fmt: skip


def test_consent_per_day_counts_the_tenants_entries_by_recorded_day(ledger: ConsentLedger) -> None:
    ledger.append([_consent("t", "k1", "+6581968289", False)])
    ledger.append(
        [_consent("t", "k2", "+6581968280", True), _consent("u", "k3", "+6581968281", False)]
    )
    day = ledger.now()[:10]
    counts = ledger.read_model.consent_per_day("t", day + "T00:00:00.000Z")
    assert counts == [ConsentDay(day, 1, 1)]
    assert ledger.read_model.consent_per_day("u", day + "T00:00:00.000Z") == [ConsentDay(day, 1, 0)]
    assert ledger.read_model.consent_per_day("t", "2999-01-01T00:00:00.000Z") == []


def test_review_filters_and_backlog_per_tenant(ledger: ConsentLedger) -> None:
    first = ledger.append([_flag("t", "f1", "A")])[0].position
    time.sleep(0.005)  # recorded times have millisecond precision: the two must differ
    second = ledger.append([_flag("t", "f2", "B")])[0].position
    ledger.append([_flag("u", "f3", "A")])
    assert [i.position for i in ledger.review_queue("t")] == [first, second]
    assert [i.position for i in ledger.review_queue("t", subaccount="B")] == [second]
    assert ledger.review_queue("t", kind="unresolved") == []
    recorded = ledger.review_item("t", second).recorded_at
    assert [i.position for i in ledger.review_queue("t", recorded_before=recorded)] == [first]
    backlog = ledger.read_model.review_backlog("t")
    assert [(b.kind, b.open) for b in backlog] == [("flagged", 2)]
    assert sum(b.open for b in ledger.read_model.review_backlog()) == 3


def test_quarantine_summary_is_per_tenant(ledger: ConsentLedger) -> None:
    assert ledger.read_model.quarantine_summary("t") == QuarantineSummary(0, None)
    for tenant, at in (("t", "2026-06-01T10:00:00.000Z"), ("t", "2026-06-02T10:00:00.000Z"),
                       ("u", "2026-05-01T10:00:00.000Z")):  # fmt: skip
        ledger.store.quarantine(
            QuarantineRecord(tenant=tenant, received_at=at, reason="not JSON",
                             content_type=None, body=b"x", remote_addr=None, request_id=None)
        )  # fmt: skip
    assert ledger.read_model.quarantine_summary("t") == QuarantineSummary(
        2, "2026-06-01T10:00:00.000Z"
    )
