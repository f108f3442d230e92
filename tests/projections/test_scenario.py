"""Consent decisions a sender and an auditor rely on (docs/consent-rules.md §7–§8).

The first tests are the issue's scenario, exactly: STOP on ACME_MKT (2026-01-01), START on
ACME_MKT (02-01), STOPALL via ACME_CARE (03-01), START on ACME_MKT (04-01), then — recorded last —
an imported opt-out on ACME_MKT that occurred 02-15.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from ledger.errors import InvalidInput, UnknownSubaccount
from ledger.events import ConsentRevoked, Method, SubaccountConfigured
from ledger.keywords import KeywordChanges
from ledger.timefmt import format_time, normalize_time, parse_time
from projections.decisions import Decision
from projections.intake import IntakeRequest, IntakeResult, record
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild
from projections.timeline import Interval

TENANT = "acme"
NUMBER = "+6581968289"
OTHER = "+6591234567"
MKT, CARE, NEW = "ACME_MKT", "ACME_CARE", "ACME_NEW"  # ACME_NEW is never configured


def t(text: str) -> str:
    """A canonical time from a short one ("2026-02-20" → 2026-02-20T00:00:00.000Z)."""
    return normalize_time(text)


def rec(
    ledger: ConsentLedger,
    subaccount: str | None,
    *,
    text: str | None = None,
    verb: Any = None,
    occurred: str | None = None,
    method: Method = "8x8-webhook",
    msisdn: str = NUMBER,
) -> IntakeResult:
    return record(
        ledger,
        IntakeRequest(
            tenant=TENANT,
            subaccount=subaccount,
            msisdn=msisdn,
            method=method,
            text=text,
            verb=verb,
            occurred_at=occurred,
        ),
    )


def decide(
    ledger: ConsentLedger,
    subaccount: str,
    at: str,
    known_at: int | None = None,
    msisdn: str = NUMBER,
) -> Decision:
    return ledger.decide(TENANT, subaccount, msisdn, at=t(at), known_at=known_at)


def state(decision: Decision) -> tuple[str, bool, int | None]:
    by = decision.decided_by
    return decision.state, decision.allowed, None if by is None else by.position


@pytest.fixture
def configured(ledger: ConsentLedger) -> ConsentLedger:
    ledger.configure_subaccount(TENANT, MKT, actor="admin:1")  # position 1
    ledger.configure_subaccount(TENANT, CARE, actor="admin:1")  # position 2
    return ledger


class Scenario:
    stop = 3
    start = 4
    stopall = 5
    restart = 6
    imported = 7


@pytest.fixture
def scenario(configured: ConsentLedger) -> ConsentLedger:
    ledger = configured
    results = [
        rec(ledger, MKT, text="STOP", occurred="2026-01-01T00:00:00Z"),
        rec(ledger, MKT, text="START", occurred="2026-02-01T00:00:00Z"),
        rec(ledger, CARE, text="STOPALL", occurred="2026-03-01T00:00:00Z"),
        rec(ledger, MKT, text="START", occurred="2026-04-01T00:00:00Z"),
        rec(ledger, MKT, verb="opt_out", method="import", occurred="2026-02-15T00:00:00Z"),
    ]
    assert [r.position for r in results] == [3, 4, 5, 6, 7]
    assert [r.outcome for r in results] == [
        "opted_out",
        "opted_in",
        "opted_out",
        "opted_in",
        "opted_out",
    ]
    stopall = results[2].entry
    assert stopall is not None
    assert isinstance(stopall.event, ConsentRevoked)
    assert stopall.event.scope == "tenant"
    imported = results[4].entry
    assert imported is not None
    assert imported.event.method == "import"
    return ledger


# -- the scenario ---------------------------------------------------------------------


def test_import_recorded_last_decides_as_known_now(scenario: ConsentLedger) -> None:
    assert state(decide(scenario, MKT, "2026-02-20")) == ("opted_out", False, Scenario.imported)


def test_before_the_import_was_known_the_number_was_opted_in(scenario: ConsentLedger) -> None:
    before_import = Scenario.imported - 1
    as_known = decide(scenario, MKT, "2026-02-20", known_at=before_import)
    assert state(as_known) == ("opted_in", True, Scenario.start)
    assert as_known.known_at == before_import

    # the same question with known_at as a recorded time instead of a position
    [entry_before] = scenario.store.read_from(before_import, 1)
    recorded = entry_before.entry.recorded_at
    [imported] = scenario.store.read_from(Scenario.imported, 1)
    assert recorded < imported.entry.recorded_at
    position = scenario.known_at(recorded).position
    assert position == before_import
    assert state(decide(scenario, MKT, "2026-02-20", known_at=position)) == state(as_known)
    # a moment before the import was recorded is still "before"
    just_before = format_time(parse_time(imported.entry.recorded_at) - timedelta(milliseconds=1))
    assert scenario.known_at(just_before).position == before_import
    assert scenario.known_at(imported.entry.recorded_at).position == Scenario.imported


def test_every_subaccount_is_opted_out_from_the_stopall(scenario: ConsentLedger) -> None:
    for at in ("2026-03-01T00:00:00.000Z", "2026-03-01T00:00:00.001Z", "2026-03-20"):
        for sub in (MKT, CARE, NEW):
            assert state(decide(scenario, sub, at)) == ("opted_out", False, Scenario.stopall), (
                sub,
                at,
            )
    # just before it, only ACME_MKT had an opt-out (the import); the others knew nothing
    before = "2026-02-28T23:59:59.999Z"
    assert state(decide(scenario, MKT, before)) == ("opted_out", False, Scenario.imported)
    assert state(decide(scenario, CARE, before)) == ("unknown", True, None)
    assert state(decide(scenario, NEW, before)) == ("unknown", True, None)


def test_acme_mkt_allowed_again_from_april_while_acme_care_stays_out(
    scenario: ConsentLedger,
) -> None:
    for at in ("2026-04-01", "2026-04-01T00:00:00.001Z", "2026-05-15"):
        assert state(decide(scenario, MKT, at)) == ("opted_in", True, Scenario.restart)
        assert state(decide(scenario, CARE, at)) == ("opted_out", False, Scenario.stopall)
        assert state(decide(scenario, NEW, at)) == ("opted_out", False, Scenario.stopall)
    assert state(decide(scenario, MKT, "2026-03-31T23:59:59.999Z"))[0] == "opted_out"
    # "now" (the clock says June 2026)
    now_mkt = scenario.decide(TENANT, MKT, NUMBER)
    now_care = scenario.decide(TENANT, CARE, NUMBER)
    assert (now_mkt.allowed, now_care.allowed) == (True, False)


def test_scenario_other_numbers_are_untouched(scenario: ConsentLedger) -> None:
    for sub in (MKT, CARE, NEW):
        assert state(decide(scenario, sub, "2026-03-20", msisdn=OTHER)) == ("unknown", True, None)


def test_scenario_timeline(scenario: ConsentLedger) -> None:
    iv = scenario.timeline(TENANT, MKT, NUMBER)
    assert iv == [
        Interval(t("2026-01-01"), t("2026-02-01"), "opted_out", 3, "subaccount"),
        Interval(t("2026-02-01"), t("2026-02-15"), "opted_in", 4, "subaccount"),
        Interval(t("2026-02-15"), t("2026-03-01"), "opted_out", 7, "subaccount"),
        Interval(t("2026-03-01"), t("2026-04-01"), "opted_out", 5, "tenant"),
        Interval(t("2026-04-01"), None, "opted_in", 6, "subaccount"),
    ]
    assert scenario.timeline(TENANT, MKT, NUMBER, known_at=6) == [
        Interval(t("2026-01-01"), t("2026-02-01"), "opted_out", 3, "subaccount"),
        Interval(t("2026-02-01"), t("2026-03-01"), "opted_in", 4, "subaccount"),
        Interval(t("2026-03-01"), t("2026-04-01"), "opted_out", 5, "tenant"),
        Interval(t("2026-04-01"), None, "opted_in", 6, "subaccount"),
    ]
    assert scenario.timeline(TENANT, CARE, NUMBER) == [
        Interval(t("2026-03-01"), None, "opted_out", 5, "tenant"),
    ]
    # every interval agrees with the point decision at its start and just before its end
    for interval in iv:
        assert state(decide(scenario, MKT, interval.from_))[2] == interval.position
        if interval.to is not None:
            end = format_time(parse_time(interval.to) - timedelta(milliseconds=1))
            assert state(decide(scenario, MKT, end))[2] == interval.position


def test_scenario_projection_equals_a_rebuild(scenario: ConsentLedger) -> None:
    assert matches_rebuild(scenario)


# -- retraction -------------------------------------------------------------------------------

GRID = (
    "2025-12-31",
    "2026-01-01",
    "2026-01-15",
    "2026-02-01",
    "2026-02-14T23:59:59.999Z",
    "2026-02-15",
    "2026-02-20",
    "2026-03-01",
    "2026-03-15",
    "2026-04-01",
    "2026-05-01",
)


def test_retracted_opt_out_has_no_effect_as_known_after_it(scenario: ConsentLedger) -> None:
    [retraction] = [scenario.retract(TENANT, Scenario.imported, reason="wrong file", actor="a:1")]
    after = retraction.position
    assert after == 8
    for at in GRID:
        for sub in (MKT, CARE, NEW):
            now = decide(scenario, sub, at)
            without = decide(scenario, sub, at, known_at=Scenario.imported - 1)
            assert state(now) == state(without), (sub, at)
            assert now.decided_by is None or now.decided_by.position != Scenario.imported
    assert state(decide(scenario, MKT, "2026-02-20")) == ("opted_in", True, Scenario.start)
    # as known before the retraction, the import still decides
    as_before = decide(scenario, MKT, "2026-02-20", known_at=after - 1)
    assert state(as_before) == ("opted_out", False, Scenario.imported)
    assert Scenario.imported in [i.position for i in scenario.timeline(TENANT, MKT, NUMBER, 7)]
    assert Scenario.imported not in [i.position for i in scenario.timeline(TENANT, MKT, NUMBER)]
    # the log keeps the retracted entry: a correction never edits the past
    assert [s.position for s in scenario.history(TENANT, NUMBER)] == [3, 4, 5, 6, 7]
    assert matches_rebuild(scenario)


def test_retracting_a_stopall_frees_every_subaccount(scenario: ConsentLedger) -> None:
    scenario.retract(TENANT, Scenario.stopall, reason="sent by a test", actor="admin:1")
    assert state(decide(scenario, CARE, "2026-03-20")) == ("unknown", True, None)
    assert state(decide(scenario, NEW, "2026-03-20")) == ("unknown", True, None)
    assert state(decide(scenario, MKT, "2026-03-20")) == ("opted_out", False, Scenario.imported)
    assert state(decide(scenario, CARE, "2026-03-20", known_at=7)) == (
        "opted_out",
        False,
        Scenario.stopall,
    )


# -- tenant revoke_all ------------------------------------------------------------------------


def test_revoke_all_turns_a_plain_stop_into_tenant_scope(configured: ConsentLedger) -> None:
    ledger = configured
    ledger.configure_tenant(TENANT, revoke_all=True, actor="admin:1")
    result = rec(ledger, MKT, text="STOP", occurred="2026-01-10T00:00:00Z")
    assert result.entry is not None
    event = result.entry.event
    assert isinstance(event, ConsentRevoked)
    assert (event.scope, event.revoke_all) == ("tenant", True)
    for sub in (MKT, CARE, NEW):
        assert state(decide(ledger, sub, "2026-01-20")) == ("opted_out", False, result.position)
    # START re-subscribes ACME_MKT only
    rec(ledger, MKT, text="START", occurred="2026-01-15T00:00:00Z")
    assert decide(ledger, MKT, "2026-01-20").allowed
    assert not decide(ledger, CARE, "2026-01-20").allowed

    # turning revoke_all off changes no earlier entry; the next plain STOP is per subaccount
    ledger.configure_tenant(TENANT, revoke_all=False, actor="admin:1")
    assert not decide(ledger, CARE, "2026-01-20").allowed
    later = rec(ledger, MKT, text="STOP", occurred="2026-02-01T00:00:00Z", msisdn=OTHER)
    assert later.entry is not None
    assert isinstance(later.entry.event, ConsentRevoked)
    assert later.entry.event.scope == "subaccount"
    assert decide(ledger, CARE, "2026-02-02", msisdn=OTHER).state == "unknown"
    assert matches_rebuild(ledger)


# -- unknown: deny ----------------------------------------------------------------------------


def test_unknown_deny_refuses_numbers_without_an_entry(configured: ConsentLedger) -> None:
    ledger = configured
    ledger.configure_subaccount(TENANT, "ACME_OTP", actor="admin:1", unknown="deny")
    denied = ledger.decide(TENANT, "ACME_OTP", NUMBER)
    assert (denied.state, denied.allowed, denied.decided_by) == ("unknown", False, None)
    assert denied.subaccount_known
    assert "opt-in" in denied.reason
    # suppression-list mode (the default) for other subaccounts, even never-configured ones
    assert ledger.decide(TENANT, MKT, NUMBER).allowed
    unseen = ledger.decide(TENANT, NEW, NUMBER)
    assert unseen.allowed
    assert not unseen.subaccount_known
    # an express opt-in opens it for that number only
    rec(ledger, "ACME_OTP", text="START", occurred=ledger.now())
    assert ledger.decide(TENANT, "ACME_OTP", NUMBER).allowed
    assert not ledger.decide(TENANT, "ACME_OTP", OTHER).allowed
    # switching to allow applies from then on; as known before, deny still held
    deny_position = 3
    back = ledger.configure_subaccount(TENANT, "ACME_OTP", actor="admin:1", unknown="allow")
    assert ledger.decide(TENANT, "ACME_OTP", OTHER).allowed
    assert not ledger.decide(TENANT, "ACME_OTP", OTHER, known_at=back.position - 1).allowed
    assert ledger.decide(TENANT, "ACME_OTP", OTHER, known_at=deny_position - 1).allowed


# -- bulk decisions ---------------------------------------------------------------------------


def test_decide_many_equals_decide_per_number(scenario: ConsentLedger) -> None:
    rec(scenario, CARE, text="STOP", occurred="2026-01-05T00:00:00Z", msisdn=OTHER)
    rec(scenario, MKT, text="START", occurred="2026-01-06T00:00:00Z", msisdn="+6591234568")
    numbers = [NUMBER, OTHER, "+6591234568", "+6591234569", NUMBER, "+14155550123"]
    for sub in (MKT, CARE, NEW):
        for at in GRID:
            many, head = scenario.decide_many(TENANT, sub, numbers, at=t(at))
            assert head == scenario.head()
            assert set(many) == set(numbers)
            for number in numbers:
                assert many[number] == scenario.decide(TENANT, sub, number, at=t(at)), (
                    sub,
                    at,
                    number,
                )
    assert scenario.decide_many(TENANT, MKT, [], at=t("2026-01-01"))[0] == {}


# -- review, refusals and what is not stored ---------------------------------------------------


def test_opt_out_with_an_unresolved_subaccount_applies_tenant_wide(
    configured: ConsentLedger,
) -> None:
    ledger = configured
    # the Automation Builder tutorial body puts the message text into "subaccount"
    result = rec(ledger, "STOP", text="STOP", occurred="2026-01-10T00:00:00Z")
    assert result.outcome == "opted_out"
    assert result.unresolved
    assert result.entry is not None
    assert result.entry.subaccount is None
    event = result.entry.event
    assert isinstance(event, ConsentRevoked)
    assert (event.scope, event.unresolved_subaccount) == ("tenant", "STOP")
    assert any("keyword" in note for note in result.notes)
    for sub in (MKT, CARE, NEW, "STOP"):
        assert state(decide(ledger, sub, "2026-01-11")) == ("opted_out", False, result.position)
    [item] = ledger.review_queue(TENANT)
    assert (item.position, item.kind, item.subaccount, item.msisdn) == (
        result.position,
        "unresolved",
        "STOP",
        NUMBER,
    )
    assert ledger.review_queue("other-tenant") == []
    assert ledger.settings(TENANT, "STOP") is None  # nothing registered on a guess


def test_opt_in_for_an_unknown_subaccount_is_refused(configured: ConsentLedger) -> None:
    ledger = configured
    head = ledger.head()
    with pytest.raises(UnknownSubaccount):
        rec(ledger, NEW, verb="opt_in", occurred="2026-01-10T00:00:00Z")
    with pytest.raises(UnknownSubaccount):
        rec(ledger, NEW, text="START")
    with pytest.raises(UnknownSubaccount):
        rec(ledger, None, text="START")
    assert ledger.head() == head


def test_future_time_replaced_for_an_opt_out_and_refused_for_an_opt_in(
    configured: ConsentLedger, clock: Any
) -> None:
    ledger = configured
    future = format_time(clock.now + timedelta(minutes=6))
    result = rec(ledger, MKT, text="STOP", occurred=future)
    assert result.outcome == "opted_out"
    assert result.time_replaced
    assert result.entry is not None
    event = result.entry.event
    assert isinstance(event, ConsentRevoked)
    assert event.provider_time == future
    assert result.entry.occurred_at < future
    assert result.entry.occurred_at <= result.entry.recorded_at
    assert result.notes
    assert "future" in result.notes[0]
    assert not ledger.decide(TENANT, MKT, NUMBER).allowed  # the opt-out is not lost

    head = ledger.head()
    with pytest.raises(InvalidInput, match="future"):
        rec(ledger, MKT, text="START", occurred=format_time(clock.now + timedelta(minutes=6)))
    assert ledger.head() == head

    # within 5 minutes the provider's time is taken (no note), but a fact is never dated after
    # the ledger knew it: clamped to the recorded time, the named time kept beside it
    near = format_time(clock.now + timedelta(minutes=4))
    kept = rec(ledger, MKT, text="STOP", occurred=near, msisdn=OTHER)
    assert not kept.time_replaced
    assert kept.entry is not None
    assert kept.entry.occurred_at == kept.entry.recorded_at
    assert kept.entry.occurred_at_requested == near
    assert not ledger.decide(TENANT, MKT, OTHER).allowed  # in force at once


@pytest.mark.parametrize("text", ["Thanks!", "", "STOPWATCH", "I need help", "start the car"])
def test_a_none_text_is_not_stored(configured: ConsentLedger, text: str) -> None:
    ledger = configured
    head = ledger.head()
    result = rec(ledger, MKT, text=text)
    assert (result.outcome, result.position, result.entry) == ("none", None, None)
    assert ledger.head() == head
    assert ledger.history(TENANT, NUMBER) == []


def test_help_and_review_are_stored_but_leave_consent_alone(configured: ConsentLedger) -> None:
    ledger = configured
    helped = rec(ledger, MKT, text="HELP")
    flagged = rec(ledger, MKT, text="can you stop the delivery at 5?")
    assert (helped.outcome, flagged.outcome) == ("help", "review")
    assert [s.position for s in ledger.history(TENANT, NUMBER)] == [3, 4]
    assert ledger.decide(TENANT, MKT, NUMBER).state == "unknown"
    assert [i.kind for i in ledger.review_queue(TENANT)] == ["flagged"]


# -- configuration ----------------------------------------------------------------------------


def test_keyword_changes_project_as_a_rebuild_would(configured: ConsentLedger) -> None:
    # validate_changes lists actions safest first (opt_out, help, opt_in); the log stores the
    # keys sorted: the projection row must not depend on which of the two it was given.
    changes = KeywordChanges(add={"opt_out": ["PARE"], "help": ["SOS"], "opt_in": ["SI"]})
    configured.configure_subaccount(TENANT, MKT, actor="admin:1", keywords=changes)
    assert matches_rebuild(configured)


# -- keyword policies stored before validation refused re-subscribing additions --------------


def test_a_stored_re_subscribing_addition_never_re_subscribes(configured: ConsentLedger) -> None:
    # An old configuration entry, as written before validate_changes refused opt-in keywords
    # holding a revocation phrase; it must still replay, and no longer opts anyone back in.
    ledger = configured
    stored = KeywordChanges(add={"opt_in": ["REMOVE ME", "DO NOT TEXT"], "help": ["NO MORE"]})
    current = ledger.settings(TENANT, MKT)
    draft = ledger.subaccount_draft(TENANT, MKT, current, actor="admin:1", method="admin")
    assert isinstance(draft.event, SubaccountConfigured)
    event = msgspec.structs.replace(draft.event, keywords=stored, policy_version=2)
    ledger.append([msgspec.structs.replace(draft, event=event)])
    assert ledger.policy(TENANT, MKT).name == f"{MKT}@2"

    for day, text in enumerate(["remove me", "do not text", "no more"], start=1):
        started = rec(ledger, MKT, text="START", occurred=f"2026-01-0{day}T08:00:00Z")
        assert started.outcome == "opted_in"
        revoked = rec(ledger, MKT, text=text, occurred=f"2026-01-0{day}T09:00:00Z")
        assert revoked.outcome == "opted_out", text
        assert revoked.classification is not None
        assert revoked.classification.keyword == text.upper()
        assert state(decide(ledger, MKT, f"2026-01-0{day}T10:00:00Z"))[:2] == ("opted_out", False)
    assert matches_rebuild(ledger)
