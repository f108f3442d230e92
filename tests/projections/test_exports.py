"""Exported suppression lists equal the single-decision answer for every number
(docs/adopting.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import RetractionError
from ledger.events import ConsentGranted, ConsentRevoked
from ledger.store import Draft
from ledger.timefmt import normalize_time
from projections.exports import Export, consent_records, suppression_list
from projections.ledger import ConsentLedger
from tests.pg_util import fresh_schema, require_server

TENANT = "t"
SUBACCOUNTS = ("A", "B")
NUMBERS = tuple(f"+658100000{n}" for n in range(6))
DAYS = tuple(f"2026-01-{d:02d}T00:00:00.000Z" for d in range(1, 9))

entry = st.tuples(
    st.sampled_from(NUMBERS),
    st.sampled_from(("A", "B", "*")),
    st.sampled_from(("opt_out", "opt_in", "retract")),
    st.sampled_from(DAYS),
)


def draft(n: int, number: str, scope: str, action: str, day: str) -> Draft:
    common = {"keyword": None, "match": None, "policy": None, "channel": "sms", "actor": "x"}
    event: ConsentRevoked | ConsentGranted
    if action == "opt_out":
        event = ConsentRevoked(
            scope="tenant" if scope == "*" else "subaccount", method="import", **common
        )  # type: ignore[arg-type]
    else:
        event = ConsentGranted(scope="subaccount", method="api", **common)  # type: ignore[arg-type]
    return Draft(
        tenant=TENANT,
        key=f"k{n}",
        subaccount=None if scope == "*" else scope,
        msisdn=number,
        occurred_at=day,
        event=event,
    )


def build(led: ConsentLedger, history: list[tuple[str, str, str, str]]) -> None:
    for sub in SUBACCOUNTS:
        led.configure_subaccount(TENANT, sub, actor="x")
    for n, (number, scope, action, day) in enumerate(history):
        if action == "retract":
            facts = [p for p in range(3, led.head() + 1)]
            if facts:  # retract some earlier consent entry (may be refused: then nothing)
                try:
                    led.retract(TENANT, facts[n % len(facts)], reason="test", actor="x")
                except RetractionError:  # not retractable: the history goes on
                    continue
            continue
        if action == "opt_in" and scope == "*":
            scope = "A"
        led.append([draft(n, number, scope, action, day)])


@given(st.lists(entry, max_size=25))
def test_export_equals_decisions(history: list[tuple[str, str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        led = ConsentLedger(Path(tmp) / "l.db")
        try:
            check_export(led, history)
        finally:
            led.close()


@settings(max_examples=12)
@given(st.lists(entry, max_size=25))
def test_export_equals_decisions_on_postgresql(history: list[tuple[str, str, str, str]]) -> None:
    require_server()
    with fresh_schema() as url:
        led = ConsentLedger(url)
        try:
            check_export(led, history)
        finally:
            led.close()


def check_export(led: ConsentLedger, history: list[tuple[str, str, str, str]]) -> None:
    """Every suppression list and consent record of ``history`` equals the decisions."""
    build(led, history)
    head = led.head()
    for at, known in [(d, head) for d in (DAYS[0], DAYS[3], DAYS[7], "2030-01-01")] + [
        (DAYS[5], max(2, head - 4))  # as known earlier: the full bitemporal reads
    ]:
        at = normalize_time(at)
        point = Export(tenant=TENANT, at=at, known_at=known)
        for sub in (*SUBACCOUNTS, "NEVER_SEEN"):
            listed = {s.msisdn: s.position for s in suppression_list(led, point, sub, page=2)}
            decided = {
                m: d.decided_by.position
                for m in NUMBERS
                if (d := led.decide(TENANT, sub, m, at=at, known_at=known)).state == "opted_out"
                and d.decided_by is not None
            }
            assert listed == decided
        everywhere = {s.msisdn for s in suppression_list(led, point, None, page=2)}
        assert everywhere == {
            m
            for m in NUMBERS
            if all(
                led.decide(TENANT, sub, m, at=at, known_at=known).state == "opted_out"
                for sub in (*SUBACCOUNTS, "NEVER_SEEN")
            )
        }
        records = {(r.subject, r.subaccount): r for r in consent_records(led, point, page=3)}
        for (number, sub), record in records.items():
            if sub != "*":
                decision = led.decide(TENANT, sub, number, at=at, known_at=known)
                own = decision.decided_by
                if own is not None and own.position == record.position:
                    assert decision.state == (
                        "opted_out" if record.state == "withdrawn" else "opted_in"
                    )
