"""The ports adoption needs, per engine: erasure with a tombstone and the quarantine, scrubbing,
suppression listings, consent states and superseded entries (docs/adopting.md)."""

from __future__ import annotations

from ledger.entries import Evidence
from ledger.events import ConsentGranted, ConsentRevoked, EvidenceErased
from ledger.store import Draft, QuarantineRecord
from projections.ledger import ConsentLedger

from ..pg_util import scrub_when_free

TENANT = "t"
A, B = "+6581000001", "+6581000002"


def consent(key: str, number: str, sub: str | None, granted: bool, day: int) -> Draft:
    common = {"keyword": None, "match": None, "policy": None, "channel": "sms", "actor": "x"}
    event = (
        ConsentGranted(scope="subaccount", method="api", **common)  # type: ignore[arg-type]
        if granted
        else ConsentRevoked(
            scope="subaccount" if sub else "tenant",
            method="api",
            **common,  # type: ignore[arg-type]
        )
    )
    return Draft(
        tenant=TENANT,
        key=key,
        subaccount=sub,
        msisdn=number,
        occurred_at=f"2026-01-{day:02d}T00:00:00.000Z",
        event=event,
        evidence=Evidence(text=f"text of {key}"),
    )


def history(ledger: ConsentLedger) -> list[int]:
    ledger.configure_subaccount(TENANT, "S", actor="x")
    ledger.configure_subaccount(TENANT, "R", actor="x")
    appended = ledger.append(
        [
            consent("1", A, "S", False, 1),  # superseded by 2
            consent("2", A, "S", True, 2),
            consent("3", B, None, False, 3),  # tenant-wide: decides S and R
            consent("4", B, "R", True, 4),  # R may send to B again
        ]
    )
    return [a.position for a in appended]


def test_erase_appends_a_tombstone_and_empties_the_quarantine(ledger: ConsentLedger) -> None:
    positions = history(ledger)
    kept = ledger.store.quarantine(
        QuarantineRecord(
            tenant=TENANT,
            received_at="2026-01-01T00:00:00.000Z",
            reason="unreadable",
            content_type="application/json",
            body=f'{{"source": "{A}"}}'.encode(),
            remote_addr="203.0.113.7",
            request_id="r",
        )
    )
    tombstone = Draft(
        tenant=TENANT,
        key="erasure-1",
        subaccount=None,
        msisdn=A,
        occurred_at=None,
        event=EvidenceErased(reason="T-1", actor="x", positions=tuple(positions[:2])),
    )
    before = ledger.decide(TENANT, "S", A, at="2026-02-01")
    appended = ledger.store.erase(positions[:2], "T-1", tombstone, [kept])
    assert appended is not None
    assert appended.position == ledger.head()
    rows = ledger.store.evidence(positions)
    assert rows[positions[0]] == (None, None)
    assert rows[positions[1]] == (None, None)
    assert rows[positions[2]][1] is not None
    record = ledger.store.quarantined(TENANT, after_id=0, limit=10)[0]
    assert record.body == b""
    assert "T-1" in record.reason
    after = ledger.decide(TENANT, "S", A, at="2026-02-01")
    assert (after.state, after.decided_by) == (before.state, before.decided_by)
    assert ledger.store.erase(positions[:2], "again") is None  # nothing left, no tombstone
    scrub_when_free(ledger.store)


def test_suppressed_and_consent_states(ledger: ConsentLedger) -> None:
    positions = history(ledger)
    head, at = ledger.head(), "2026-02-01T00:00:00.000Z"
    page = ledger.read_model.suppressed(TENANT, "S", at, head, ("", ""), 10)
    assert [(f.msisdn, f.position) for f in page.facts] == [(B, positions[2])]
    assert page.cursor is None
    everywhere = ledger.read_model.suppressed(TENANT, None, at, head, ("", ""), 10)
    assert everywhere.facts == []  # R's own opt-in lifts B for R
    for subaccount, listed in (("R", []), ("S", [B])):  # page by page, one number at a time
        found, after = [], ("", "")
        while True:
            page = ledger.read_model.suppressed(TENANT, subaccount, at, head, after, 1)
            found += [f.msisdn for f in page.facts]
            if page.cursor is None:
                break
            after = page.cursor
        assert found == listed
    states = ledger.read_model.consent_states(TENANT, at, head, ("", ""), 10)
    assert [(f.msisdn, f.scope, f.position) for f in states.facts] == [
        (A, "S", positions[1]),
        (B, "", positions[2]),
        (B, "R", positions[3]),
    ]
    early = ledger.read_model.suppressed(
        TENANT, "S", "2026-01-01T12:00:00.000Z", head, ("", ""), 10
    )
    assert [f.msisdn for f in early.facts] == [A]


def test_superseded(ledger: ConsentLedger) -> None:
    positions = history(ledger)
    now = ledger.now()
    assert ledger.read_model.superseded(TENANT, now, 0, 10) == [positions[0]]
    assert ledger.read_model.superseded(TENANT, "2000-01-01T00:00:00.000Z", 0, 10) == []
    ledger.retract(TENANT, positions[3], reason="x", actor="x")
    assert ledger.read_model.superseded(TENANT, ledger.now(), 0, 10) == [
        positions[0],
        positions[3],
    ]
    assert ledger.read_model.configured_tenants() == []
    ledger.update_tenant(TENANT, actor="x", revoke_all=True)
    assert ledger.read_model.configured_tenants() == [TENANT]
