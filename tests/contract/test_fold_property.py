"""Property: live projection == rebuilt projection == a naive fold of the log (the rule of
docs/consent-rules.md §7).

Random sequences of opt-outs and opt-ins (subaccount scope via STOP/START, tenant scope via
STOPALL or the tenant's ``revoke_all``), out-of-order occurred times, retractions, changes of a
subaccount's ``unknown`` setting and ``revoke_all`` toggles go through the same paths a user's
requests take (``projections.intake.record`` and ``ConsentLedger``). Then, for every number,
every subaccount (one never configured included), every valid time V on a grid around the
occurred times and every log position T, three answers must agree: the live projection, the
projection after ``projections.rebuild.rebuild``, and a fold written here straight from the rule:

    the state of (S, m) at V as known at T is decided by the latest consent entry by occurred
    time (ties by position) among m's entries with position <= T, not retracted by a retraction
    with position <= T, occurred <= V, whose scope is S or tenant-wide; with no such entry it is
    unknown, allowed unless S's latest configuration (position <= T, occurred <= V) says deny.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.entries import Entry
from ledger.errors import RetractionError, UnknownSubaccount
from ledger.events import (
    RETRACTABLE_TYPES,
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    SubaccountConfigured,
)
from ledger.timefmt import format_time, parse_time
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild, rebuild

from .conftest import ENGINES, fresh_engine

TENANT = "acme"
NUMBERS = ("+6581960001", "+6581960002", "+6581960003")
SUBACCOUNTS = ("S_A", "S_B", "S_C")
NEVER = "S_NEVER"  # never configured, never named by an entry
BASE = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

Answer = tuple[bool, str, int | None]
Key = tuple[str, str, str, int]


class Clock:
    """Time moves only when the test says so (plus 1 ms per reading, like a real clock)."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@contextmanager
def fresh_ledger(engine: str) -> Iterator[tuple[ConsentLedger, Clock]]:
    """A ledger on a fresh database of ``engine``, with a clock the test moves."""
    clock = Clock()
    with fresh_engine(engine) as where:
        ledger = where.open(clock)
        try:
            yield ledger, clock
        finally:
            ledger.close()


# -- operations -------------------------------------------------------------------------------

consent_ops = st.tuples(
    st.just("consent"),
    st.sampled_from(["STOP", "STOP", "STOPALL", "START", "START"]),
    st.integers(0, 2),  # number
    st.integers(0, 2),  # subaccount
    st.integers(0, 12),  # occurred: BASE + this many seconds (out of order, ties likely)
)
retract_ops = st.tuples(st.just("retract"), st.integers(0, 50), st.booleans())
unknown_ops = st.tuples(st.just("unknown"), st.integers(0, 2), st.sampled_from(["allow", "deny"]))
revoke_all_ops = st.tuples(st.just("revoke_all"), st.booleans())
operations = st.lists(
    st.one_of(consent_ops, consent_ops, retract_ops, unknown_ops, revoke_all_ops),
    min_size=1,
    max_size=10,
)


def apply_operations(
    ledger: ConsentLedger,
    clock: Clock,
    ops: list[tuple[Any, ...]],
    numbers: tuple[str, ...],
    subaccounts: tuple[str, ...],
) -> None:
    """Apply ``ops``; refusals must raise before writing anything."""
    # every subaccount but the last is configured up front; the last is unknown until an
    # ``unknown`` operation names it (an opt-out for it before then is applied tenant-wide)
    for sub in subaccounts[:-1]:
        ledger.configure_subaccount(TENANT, sub, actor="admin:test")
    consent_positions: list[int] = []
    retracted: set[int] = set()
    for step, op in enumerate(ops, start=1):
        clock.now = BASE + timedelta(seconds=step)
        head = ledger.head()
        kind = op[0]
        if kind == "consent":
            _, text, n, s, seconds = op
            sub = subaccounts[s % len(subaccounts)]
            occurred = format_time(BASE + timedelta(seconds=seconds))
            request = IntakeRequest(
                tenant=TENANT,
                subaccount=sub,
                msisdn=numbers[n % len(numbers)],
                method="api",
                text=text,
                occurred_at=occurred,
            )
            if text == "START" and ledger.settings(TENANT, sub) is None:
                try:
                    record(ledger, request)
                except UnknownSubaccount:
                    assert ledger.head() == head
                    continue
                raise AssertionError("an opt-in for an unknown subaccount was recorded")
            result = record(ledger, request)
            assert result.position == head + 1
            revoked = result.entry.event if result.entry else None
            if isinstance(revoked, ConsentRevoked) and revoked.scope == "tenant":
                event("tenant-wide opt-out" + (" (revoke_all)" if revoked.revoke_all else ""))
            consent_positions.append(head + 1)
        elif kind == "retract":
            _, index, any_position = op
            if any_position or not consent_positions:
                target = index % (head + 2)  # 0 and head + 1 do not exist
            else:
                target = consent_positions[index % len(consent_positions)]
            allowed = target in consent_positions and target not in retracted
            try:
                ledger.retract(TENANT, target, reason="test", actor="admin:test")
            except RetractionError:
                assert not allowed, target
                assert ledger.head() == head
                continue
            assert allowed, target
            retracted.add(target)
            event("retraction applied")
        elif kind == "unknown":
            _, s, unknown = op
            sub = subaccounts[s % len(subaccounts)]
            ledger.configure_subaccount(TENANT, sub, actor="admin:test", unknown=unknown)
        else:
            ledger.configure_tenant(TENANT, revoke_all=op[1], actor="admin:test")


# -- the three answers ------------------------------------------------------------------------


def valid_time_grid(entries: list[Entry]) -> list[str]:
    """Every occurred time in the log, 1 ms before each, and one time before/after them all."""
    moments = {parse_time(e.occurred_at) for e in entries}
    grid = {BASE - timedelta(seconds=1), BASE + timedelta(minutes=10)}
    for moment in moments:
        grid.update((moment, moment - timedelta(milliseconds=1)))
    return sorted(format_time(m) for m in grid)


def projection_answers(
    ledger: ConsentLedger,
    numbers: tuple[str, ...],
    subs: tuple[str, ...],
    grid: list[str],
    head: int,
) -> dict[Key, Answer]:
    view = ledger.read_model
    out: dict[Key, Answer] = {}
    for sub in subs:
        for v in grid:
            for t in range(head + 1):
                found = view.decide_many(TENANT, sub, numbers, v, t)
                bulk = view.states_many(TENANT, sub, numbers, v, t)
                for number, d in found.items():
                    assert d.known_at == t
                    assert d.at == v
                    assert bulk.allowed(number) == (d.allowed, d.state)
                    assert bulk.subaccount_known == d.subaccount_known
                    by = d.decided_by.position if d.decided_by else None
                    out[(number, sub, v, t)] = (d.allowed, d.state, by)
    return out


def naive_answer(entries: list[Entry], number: str, sub: str, v: str, t: int) -> Answer:
    """The rule of docs/consent-rules.md §7, literally, over the decoded log entries."""
    at, visible = parse_time(v), [e for e in entries if e.position <= t and e.tenant == TENANT]
    retracted = {e.event.position for e in visible if isinstance(e.event, EntryRetracted)}
    best: Entry | None = None
    for e in visible:
        event = e.event
        if not isinstance(event, ConsentRevoked | ConsentGranted):
            continue
        if e.msisdn != number or e.position in retracted or parse_time(e.occurred_at) > at:
            continue
        if not (event.scope == "tenant" or e.subaccount == sub):
            continue
        rank = (parse_time(e.occurred_at), e.position)
        if best is None or rank > (parse_time(best.occurred_at), best.position):
            best = e
    if best is not None:
        out = isinstance(best.event, ConsentRevoked)
        return (not out, "opted_out" if out else "opted_in", best.position)
    configs = [
        e
        for e in visible
        if isinstance(e.event, SubaccountConfigured)
        and e.subaccount == sub
        and parse_time(e.occurred_at) <= at
    ]
    latest = max(configs, key=lambda e: (parse_time(e.occurred_at), e.position), default=None)
    allow = latest is None or latest.event.unknown == "allow"  # type: ignore[union-attr]
    return (allow, "unknown", None)


SERVER_EXAMPLES_SHARE = 3
"""On a database server, a third of the examples (at least 10): each makes a schema and answers
some thousand questions, a round trip each."""


@pytest.mark.parametrize("engine", ENGINES)
def test_live_rebuilt_and_naive_fold_agree(engine: str) -> None:
    examples = settings.default.max_examples
    if engine != "sqlite":
        examples = max(10, examples // SERVER_EXAMPLES_SHARE)

    @settings(max_examples=examples)
    @given(ops=operations, n_numbers=st.integers(2, 3), n_subaccounts=st.integers(2, 3))
    def agree(ops: list[tuple[Any, ...]], n_numbers: int, n_subaccounts: int) -> None:
        check_agreement(engine, ops, n_numbers, n_subaccounts)

    agree()


def check_agreement(
    engine: str, ops: list[tuple[Any, ...]], n_numbers: int, n_subaccounts: int
) -> None:
    """Apply ``ops``; then the live projection, the rebuilt one and the naive fold agree."""
    numbers = NUMBERS[:n_numbers]
    subaccounts = SUBACCOUNTS[:n_subaccounts]
    query_subs = (*subaccounts, NEVER)
    with fresh_ledger(engine) as (ledger, clock):
        apply_operations(ledger, clock, ops, numbers, subaccounts)
        stored = ledger.store.read_from(1, 10**9)
        head = ledger.head()
        assert [s.position for s in stored] == list(range(1, head + 1))
        entries = [s.entry for s in stored]
        assert all(e.type in RETRACTABLE_TYPES or e.msisdn is None for e in entries)
        grid = valid_time_grid(entries)

        live = projection_answers(ledger, numbers, query_subs, grid, head)
        assert matches_rebuild(ledger)
        assert rebuild(ledger) == head
        rebuilt = projection_answers(ledger, numbers, query_subs, grid, head)
        assert rebuilt == live

        for key, answer in live.items():
            assert answer == naive_answer(entries, *key), key

        # the timeline as known now agrees with the point decisions it summarises
        for number in numbers:
            for sub in query_subs:
                for interval in ledger.timeline(TENANT, sub, number):
                    assert live[(number, sub, interval.from_, head)][2] == interval.position
