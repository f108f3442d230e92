"""What every storage engine guarantees through the ports (run once per engine, see conftest).

The log: positions dense from 1, a key recorded once, stored bytes that never change. The read
model: single and bulk decisions agree, point-in-time answers, a rebuild equals the live state,
the audit trail. Verification: an edited entry is found.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.cli import main
from ledger.timefmt import format_time
from projections.audit import trail
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild, rebuild

from .conftest import Engine

TENANT = "acme"
SUBS = ("S_A", "S_B")
NUMBERS = ("+6581960001", "+6581960002", "+6581960003")
BASE = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def say(
    ledger: ConsentLedger, text: str, number: str = NUMBERS[0], sub: str = "S_A", **kw: str
) -> int:
    """Record ``text`` from ``number`` on ``sub``; returns the position (0: nothing stored)."""
    result = record(
        ledger,
        IntakeRequest(tenant=TENANT, subaccount=sub, msisdn=number, method="api", text=text, **kw),
    )
    return result.position or 0


def setup(ledger: ConsentLedger) -> None:
    for sub in SUBS:
        ledger.configure_subaccount(TENANT, sub, actor="test")


def test_positions_are_dense_and_a_key_is_recorded_once(ledger: ConsentLedger) -> None:
    setup(ledger)
    first = say(ledger, "STOP", key="8x8:m-1")
    again = say(ledger, "STOP", key="8x8:m-1")
    other = say(ledger, "STOP", NUMBERS[1], key="8x8:m-2")
    assert (first, again, other) == (3, 3, 4)
    assert [s.position for s in ledger.store.read_from(1, 100)] == [1, 2, 3, 4]


def test_stored_bytes_never_change(ledger: ConsentLedger) -> None:
    setup(ledger)
    say(ledger, "STOP")
    before = [(s.position, s.data, s.leaf_hash) for s in ledger.store.read_from(1, 100)]
    for n in NUMBERS:
        say(ledger, "START", n)
    after = [(s.position, s.data, s.leaf_hash) for s in ledger.store.read_from(1, 100)]
    assert after[: len(before)] == before


def test_a_key_reused_by_another_number_never_swallows_its_stop(ledger: ConsentLedger) -> None:
    setup(ledger)
    say(ledger, "STOP", NUMBERS[0], key="8x8:undefined-ish")
    say(ledger, "STOP", NUMBERS[1], key="8x8:undefined-ish")
    for n in NUMBERS[:2]:
        assert not ledger.decide(TENANT, "S_A", n).allowed


def test_point_in_time_and_known_at(ledger: ConsentLedger) -> None:
    setup(ledger)
    stop = say(ledger, "STOP", occurred_at="2026-03-02T09:00:00Z")
    start = say(ledger, "START", occurred_at="2026-04-01T09:00:00Z")
    assert ledger.decide(TENANT, "S_A", NUMBERS[0]).allowed
    assert not ledger.decide(TENANT, "S_A", NUMBERS[0], at="2026-03-15T00:00:00Z").allowed
    assert ledger.decide(TENANT, "S_A", NUMBERS[0], at="2026-03-01T00:00:00Z").allowed
    as_known = ledger.decide(TENANT, "S_A", NUMBERS[0], known_at=stop)
    assert not as_known.allowed  # the START was not known yet
    assert start > stop
    assert ledger.decide(TENANT, "S_B", NUMBERS[0]).allowed  # never spread to S_B


_history = st.lists(
    st.tuples(
        st.sampled_from(["STOP", "STOPALL", "START", "HELP", "hello"]),
        st.integers(0, len(NUMBERS) - 1),
        st.integers(0, len(SUBS) - 1),
        st.integers(0, 20),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=_history)
def test_single_and_bulk_decisions_agree_and_rebuild_equals_live(
    engine: Engine, history: list[tuple[str, int, int, int]]
) -> None:
    engine.reset()
    ledger = engine.open()
    try:
        setup(ledger)
        for text, n, s, minutes in history:
            occurred = format_time(BASE + timedelta(minutes=minutes))
            say(ledger, text, NUMBERS[n], SUBS[s], occurred_at=occurred)
        at = format_time(BASE + timedelta(minutes=10))
        for sub in SUBS:
            many, head = ledger.decide_many(TENANT, sub, list(NUMBERS), at=at)
            assert head == ledger.head()
            for number in NUMBERS:
                one = ledger.decide(TENANT, sub, number, at=at)
                assert (many[number].allowed, many[number].state) == (one.allowed, one.state)
        assert matches_rebuild(ledger)
        rebuild(ledger)
        assert matches_rebuild(ledger)
    finally:
        ledger.close()


def test_the_audit_trail_holds_every_entry_bearing_on_the_number(ledger: ConsentLedger) -> None:
    setup(ledger)
    own = say(ledger, "STOP", sub="S_A")
    wide = say(ledger, "STOPALL", sub="S_B")
    say(ledger, "STOP", NUMBERS[1], sub="S_A")  # another number: not in this trail
    found = trail(ledger, TENANT, "S_A", NUMBERS[0])
    assert [s.position for s in found.entries] == [own, wide]


def test_verify_finds_an_edited_entry(
    engine: Engine, ledger: ConsentLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(ledger)
    stop = say(ledger, "STOP")
    ledger.close()
    assert main(["verify", "--db", engine.location]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    original = engine.open()
    try:
        data = original.store.read_from(stop, 1)[0].data
    finally:
        original.close()
    engine.tamper(stop, data.replace(b'"STOP"', b'"START"'))
    assert main(["verify", "--db", engine.location]) != 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["first_bad_position"]) == (False, stop)
