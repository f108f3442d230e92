"""Evidence bundles: built from the ledger, verified offline, and every edit caught (issue 4).

Also the pure decision fold the verifier relies on: on random logs it must agree, field for
field, with the SQL projection (``ConsentLedger.decide`` / the read model) and the
timeline, and give the same answer from only the entries a bundle carries.
"""

from __future__ import annotations

import base64
import copy
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import Signer, checkpoint_body, parse_body
from ledger.entries import Entry, Evidence, leaf_hash
from ledger.errors import RetractionError, UnknownSubaccount
from ledger.timefmt import format_time, parse_time
from projections import fold
from projections.bundle_verify import BundleInvalid, Verified, verify_bundle
from projections.evidence import (
    ERASED_NOTE,
    FORMAT,
    STATEMENT,
    Bundle,
    build_bundle,
    decode_bundle,
    encode_bundle,
)
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger
from projections.resolve import resolve

TENANT = "acme"
NUMBER = "+6581968289"
OTHER_NUMBER = "+6581960002"
ORIGIN = "consent-ledger"
BASE = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

INFORMATIONAL: frozenset[tuple[str | int, ...]] = frozenset()
"""Paths of bundle fields the verifier ignores. There are none: every field is covered by a
hash or the signature, or recomputed (see ``projections.evidence``)."""


class Clock:
    """Time moves only when the test says so (plus 1 ms per reading, like a real clock)."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@contextmanager
def fresh_ledger() -> Iterator[tuple[ConsentLedger, Clock]]:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = ConsentLedger(Path(tmp) / "ledger.db", clock=clock)
        try:
            yield ledger, clock
        finally:
            ledger.close()


def new_signer(name: str = ORIGIN) -> Signer:
    return Signer(name, Ed25519PrivateKey.generate())


def sms(ledger: ConsentLedger, text: str, sub: str | None, *, number: str = NUMBER,
        at: str, tenant: str = TENANT, profile: str | None = None) -> int:  # fmt: skip
    """Record one inbound SMS that occurred ``at``, received a second later."""
    clock = ledger.clock
    assert isinstance(clock, Clock)
    clock.now = parse_time(at) + timedelta(seconds=1)
    raw = json.dumps({"payload": {"source": number, "subAccountId": sub, "body": text}})
    result = record(
        ledger,
        IntakeRequest(
            tenant=tenant,
            subaccount=sub,
            msisdn=number,
            method="8x8-webhook",
            text=text,
            occurred_at=at,
            evidence=Evidence(raw_body=raw, text=text, profile_name=profile, request_id="r-1"),
        ),
    )
    assert result.position is not None
    return result.position


def rich_history(ledger: ConsentLedger, clock: Clock) -> dict[str, int]:
    """A history touching every kind of entry a bundle must (and must not) hold."""
    ledger.configure_tenant(TENANT, revoke_all=False, actor="admin:t")
    ledger.configure_subaccount(TENANT, "ACME_MKT", actor="admin:t", default_region="SG")
    ledger.configure_subaccount(TENANT, "ACME_ALERTS", actor="admin:t")
    ledger.configure_subaccount("other", "ACME_MKT", actor="admin:o")
    at = {
        "stop": sms(ledger, "STOP", "ACME_MKT", at="2026-01-02T10:00:00Z", profile="Ann <b>"),
        "start": sms(ledger, "START", "ACME_MKT", at="2026-01-03T10:00:00Z"),
        "stopall": sms(ledger, "STOP ALL please", "ACME_ALERTS", at="2026-01-04T10:00:00Z"),
        "alerts_start": sms(ledger, "START", "ACME_ALERTS", at="2026-01-05T10:00:00Z"),
        "flag": sms(
            ledger, "can you stop the delivery at 5?", "ACME_MKT", at="2026-01-06T10:00:00Z"
        ),
        "unresolved": sms(ledger, "STOP", "NO_SUCH_SUB", at="2026-01-07T10:00:00Z"),
        "elsewhere": sms(
            ledger, "STOP", "ACME_MKT", number=OTHER_NUMBER, at="2026-01-02T11:00:00Z"
        ),
        "other_tenant": sms(ledger, "STOP", "ACME_MKT", tenant="other", at="2026-01-02T12:00:00Z"),
    }
    at["dismissed"] = resolve(
        ledger, TENANT, at["flag"], action="dismiss", note="a delivery question", actor="admin:r"
    ).resolved.position
    at["retraction"] = ledger.retract(
        TENANT, at["start"], reason="sent by a bot", actor="admin:t"
    ).position
    ledger.configure_subaccount(TENANT, "ACME_ALERTS", actor="admin:t", unknown="deny")
    ledger.store.erase_evidence(at["stopall"], "data subject request")
    clock.now += timedelta(days=30)
    return at


@pytest.fixture
def ledger_clock() -> Iterator[tuple[ConsentLedger, Clock]]:
    with fresh_ledger() as pair:
        yield pair


def rich_bundle(
    ledger: ConsentLedger, clock: Clock, signer: Signer
) -> tuple[Bundle, dict[str, int]]:
    at = rich_history(ledger, clock)
    return build_bundle(ledger, signer, ORIGIN, TENANT, "ACME_MKT", NUMBER), at


# -- round trip ---------------------------------------------------------------------------------


def test_bundle_round_trip_verifies_offline(ledger_clock: tuple[ConsentLedger, Clock]) -> None:
    ledger, clock = ledger_clock
    signer = new_signer()
    bundle, at = rich_bundle(ledger, clock, signer)
    document = encode_bundle(bundle)

    verified = verify_bundle(document, signer.verifier_key)

    assert isinstance(verified, Verified)
    assert bundle.format == FORMAT == "consent-ledger-evidence/1"
    assert bundle.statement == STATEMENT
    assert "not that no other entry exists" in verified.summary()
    assert verified.summary().startswith("OK: ")
    # the checkpoint was made on demand and covers the newest entry
    assert bundle.checkpoint.size == ledger.head() == verified.size
    # exactly the entries that bear on the number for ACME_MKT, with their roles
    roles = {e.position: e.role for e in bundle.entries}
    assert roles == {
        1: "configuration",
        2: "configuration",
        **{at[k]: "number" for k in ("stop", "start", "stopall", "flag", "unresolved")},
        at["dismissed"]: "number",
        at["retraction"]: "targeting",
    }
    assert at["alerts_start"] not in roles  # ACME_ALERTS' own START does not bear on ACME_MKT
    assert at["elsewhere"] not in roles
    assert at["other_tenant"] not in roles
    assert all(e.entry["tenant"] == TENANT for e in bundle.entries)
    # decision and timeline are the ledger's, as known at the checkpoint's size
    expected = ledger.decide(
        TENANT, "ACME_MKT", NUMBER, at=bundle.generated_at, known_at=bundle.checkpoint.size
    )
    assert bundle.decision == msgspec.to_builtins(expected)
    assert bundle.decision["state"] == "opted_out"
    assert bundle.decision["decided_by"]["position"] == at["unresolved"]
    timeline = ledger.timeline(TENANT, "ACME_MKT", NUMBER, known_at=bundle.checkpoint.size)
    assert bundle.timeline == msgspec.to_builtins(timeline)
    assert at["start"] not in [i["position"] for i in bundle.timeline]  # retracted
    assert bundle.generated_at >= max(e.entry["recorded_at"] for e in bundle.entries)


def test_erased_evidence_verifies_with_a_note(ledger_clock: tuple[ConsentLedger, Clock]) -> None:
    ledger, clock = ledger_clock
    signer = new_signer()
    bundle, at = rich_bundle(ledger, clock, signer)
    by_position = {e.position: e for e in bundle.entries}
    erased = by_position[at["stopall"]].evidence
    assert erased is not None
    assert (erased.status, erased.salt, erased.content, erased.decoded, erased.note) == (
        "erased", None, None, None, ERASED_NOTE,
    )  # fmt: skip
    kept = by_position[at["stop"]].evidence
    assert kept is not None
    assert kept.status == "kept"
    assert (kept.decoded["text"], kept.decoded["profile_name"]) == ("STOP", "Ann <b>")
    assert by_position[1].evidence is None  # configuration entries carry no evidence
    verified = verify_bundle(encode_bundle(bundle), signer.verifier_key)
    assert verified.evidence_absent == 1


def test_formatting_is_not_content(ledger_clock: tuple[ConsentLedger, Clock]) -> None:
    """Whitespace and key order are not fields: a re-serialised bundle still verifies."""
    ledger, clock = ledger_clock
    signer = new_signer()
    bundle, _ = rich_bundle(ledger, clock, signer)
    value = json.loads(encode_bundle(bundle))
    compact = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    verify_bundle(compact, signer.verifier_key)


def test_number_without_entries(ledger_clock: tuple[ConsentLedger, Clock]) -> None:
    ledger, _ = ledger_clock
    signer = new_signer()
    empty = build_bundle(ledger, signer, ORIGIN, TENANT, "ACME_MKT", NUMBER)
    assert (empty.entries, empty.checkpoint.size) == ([], 0)
    assert (empty.decision["state"], empty.decision["allowed"]) == ("unknown", True)
    verify_bundle(encode_bundle(empty), signer.verifier_key)


# -- keys -----------------------------------------------------------------------------------


def test_only_the_given_key_verifies(ledger_clock: tuple[ConsentLedger, Clock]) -> None:
    ledger, clock = ledger_clock
    signer, forger = new_signer(), new_signer()
    bundle, _ = rich_bundle(ledger, clock, signer)
    document = encode_bundle(bundle)
    with pytest.raises(BundleInvalid, match="not the verifier key given"):
        verify_bundle(document, forger.verifier_key)
    with pytest.raises(BundleInvalid, match="verifier key given is not valid"):
        verify_bundle(document, "not-a-key")

    # a forger re-signs the same checkpoint and puts their key in the bundle
    value = json.loads(document)
    body = checkpoint_body(
        parse_body(value["checkpoint"]["note"].split("\n\n")[0].encode() + b"\n")
    )
    value["checkpoint"]["note"] = forger.sign_note(body)
    value["checkpoint"]["verifier_key"] = forger.verifier_key
    forged = json.dumps(value)
    with pytest.raises(BundleInvalid, match="not the verifier key given"):
        verify_bundle(forged, signer.verifier_key)
    # (it verifies only against the forger's key: the key must come from elsewhere)
    verify_bundle(forged, forger.verifier_key)


# -- every edit fails -----------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def leaves(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every leaf (scalar) of a JSON value with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def containers(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every dict and list inside a JSON value (the value itself included) with its path."""
    if isinstance(value, dict | list):
        yield path, value
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from containers(item, (*path, key))


def edited(value: Any, path: Path_, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def flip(text: str, at: int) -> str:
    """``text`` with the character at ``at`` replaced (by a base64 character, so that encoded
    fields stay decodable and the cryptography, not the syntax, must catch the edit)."""
    c = text[at]
    return text[:at] + ("B" if c == "A" else "A") + text[at + 1 :]


def mutations(value: Any) -> list[Any]:
    """Edits of one leaf: changed value, changed type, and removed content."""
    if isinstance(value, bool):
        return [not value, None, int(value)]
    if isinstance(value, int):
        return [value + 1, value - 1, str(value), float(value), None]
    if isinstance(value, str):
        out: list[Any] = [value + " ", "", None, 0]
        if value:
            body = value.rstrip("=") or value
            out += [flip(value, 0), flip(value, len(body) // 2), flip(value, len(body) - 1)]
        return [m for m in out if m != value]
    assert value is None
    return ["x", "", 0, False, [], {}]


def assert_refused(document: Any, key: str, what: str) -> None:
    text = json.dumps(document, ensure_ascii=False)
    try:
        verify_bundle(text, key)
    except BundleInvalid as exc:
        reason = str(exc)
    else:
        raise AssertionError(f"edit not caught: {what}")
    assert reason, what
    assert "\n" not in reason, what


@pytest.fixture(scope="module")
def signed_document() -> Iterator[tuple[dict[str, Any], str]]:
    with fresh_ledger() as (ledger, clock):
        signer = new_signer()
        bundle, _ = rich_bundle(ledger, clock, signer)
        document = json.loads(encode_bundle(bundle))
        verify_bundle(json.dumps(document), signer.verifier_key)
        yield document, signer.verifier_key


def test_editing_any_leaf_fails(signed_document: tuple[dict[str, Any], str]) -> None:
    document, key = signed_document
    checked = 0
    for path, value in leaves(document):
        if path in INFORMATIONAL:
            continue
        for new in mutations(value):
            assert_refused(edited(document, path, new), key, f"{path} = {new!r}")
            checked += 1
    kinds = {p[0] for p, _ in leaves(document)}
    assert kinds == {
        "format", "statement", "tenant", "subaccount", "msisdn", "generated_at", "decision",
        "timeline", "checkpoint", "entries",
    }  # fmt: skip
    assert checked > 1000, checked


def test_adding_or_removing_any_field_fails(signed_document: tuple[dict[str, Any], str]) -> None:
    document, key = signed_document
    for path, value in containers(document):
        if isinstance(value, dict):
            assert_refused(edited_container(document, path, {**value, "x": 1}), key, f"{path}+x")
            for name in value:
                smaller = {k: v for k, v in value.items() if k != name}
                assert_refused(edited_container(document, path, smaller), key, f"{path}-{name}")
        elif path[-1] != "entries":  # proofs, timeline: every element counts
            for i in range(len(value)):
                shorter = value[:i] + value[i + 1 :]
                assert_refused(edited_container(document, path, shorter), key, f"{path}-[{i}]")
            if value:
                longer = [*value, value[-1]]
                assert_refused(edited_container(document, path, longer), key, f"{path}+dup")


def edited_container(document: Any, path: Path_, new: Any) -> Any:
    return new if not path else edited(document, path, new)


def test_reordering_or_duplicating_entries_fails(
    signed_document: tuple[dict[str, Any], str],
) -> None:
    document, key = signed_document
    entries = document["entries"]
    for i in range(len(entries) - 1):
        swapped = [*entries[:i], entries[i + 1], entries[i], *entries[i + 2 :]]
        assert_refused(edited(document, ("entries",), swapped), key, f"swap {i}")
        doubled = [*entries[: i + 1], entries[i], *entries[i + 1 :]]
        assert_refused(edited(document, ("entries",), doubled), key, f"duplicate {i}")


def test_dropping_an_entry_the_decision_rests_on_fails(
    signed_document: tuple[dict[str, Any], str],
) -> None:
    """Dropping a whole entry is what the proofs cannot exclude (the statement says so); but the
    decision is recomputed, so dropping one it depends on without rewriting it is caught."""
    document, key = signed_document
    decisive = document["decision"]["decided_by"]["position"]
    kept = [e for e in document["entries"] if e["position"] != decisive]
    assert_refused(edited(document, ("entries",), kept), key, "drop the deciding entry")


def test_failures_name_what_failed(signed_document: tuple[dict[str, Any], str]) -> None:
    document, key = signed_document
    first = document["entries"][0]
    cases = {
        ("entries", 0, "bytes"): (flip(first["bytes"], 10), r"entries\[0\]\.bytes"),
        ("entries", 0, "leaf_hash"): (flip(first["leaf_hash"], 3), "leaf_hash is not the hash"),
        ("entries", 0, "inclusion_proof", 0): (
            flip(first["inclusion_proof"][0], 5),
            "inclusion proof does not verify",
        ),
        ("entries", 0, "entry", "type"): ("consent.granted", "decoded entry differs"),
        ("decision", "allowed"): (not document["decision"]["allowed"], "decision does not follow"),
        ("checkpoint", "note"): (document["checkpoint"]["note"].replace("\n", "\n ", 1), "note"),
        ("generated_at",): ("2020-01-01T00:00:00.000Z", "generated_at is earlier"),
    }
    for path, (new, reason) in cases.items():
        with pytest.raises(BundleInvalid, match=reason):
            verify_bundle(json.dumps(edited(document, path, new)), key)


# -- the fold -------------------------------------------------------------------------------
# Random logs as in tests/contract/test_fold_property.py (copied, not imported).

NUMBERS = ("+6581960001", "+6581960002", "+6581960003")
SUBACCOUNTS = ("S_A", "S_B", "S_C")
NEVER = "S_NEVER"

consent_ops = st.tuples(
    st.just("consent"),
    st.sampled_from(["STOP", "STOP", "STOPALL", "START", "START"]),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 12),
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
    ledger: ConsentLedger, clock: Clock, ops: list[tuple[Any, ...]], subaccounts: tuple[str, ...]
) -> None:
    for sub in subaccounts[:-1]:
        ledger.configure_subaccount(TENANT, sub, actor="admin:test")
    consent_positions: list[int] = []
    for step, op in enumerate(ops, start=1):
        clock.now = BASE + timedelta(seconds=step)
        head = ledger.head()
        if op[0] == "consent":
            _, text, n, s, seconds = op
            request = IntakeRequest(
                tenant=TENANT,
                subaccount=subaccounts[s % len(subaccounts)],
                msisdn=NUMBERS[n],
                method="api",
                text=text,
                occurred_at=format_time(BASE + timedelta(seconds=seconds)),
            )
            try:
                record(ledger, request)
            except UnknownSubaccount:
                continue
            consent_positions.append(head + 1)
        elif op[0] == "retract":
            _, index, any_position = op
            if any_position or not consent_positions:
                target = index % (head + 2)
            else:
                target = consent_positions[index % len(consent_positions)]
            try:
                ledger.retract(TENANT, target, reason="test", actor="admin:test")
            except RetractionError:
                continue
        elif op[0] == "unknown":
            sub = subaccounts[op[1] % len(subaccounts)]
            ledger.configure_subaccount(TENANT, sub, actor="admin:test", unknown=op[2])
        else:
            ledger.configure_tenant(TENANT, revoke_all=op[1], actor="admin:test")


def valid_time_grid(entries: list[Entry]) -> list[str]:
    moments = {parse_time(e.occurred_at) for e in entries}
    grid = {BASE - timedelta(seconds=1), BASE + timedelta(minutes=10)}
    for moment in moments:
        grid.update((moment, moment - timedelta(milliseconds=1)))
    return sorted(format_time(m) for m in grid)


def bundle_subset(entries: list[Entry], sub: str, number: str) -> list[Entry]:
    """The entries a bundle about (sub, number) carries (as the verifier checks them)."""
    numbers = {
        e.position for e in entries if fold.relevance(e, TENANT, sub, number, ()) == "number"
    }
    return [e for e in entries if fold.relevance(e, TENANT, sub, number, numbers) is not None]


@given(ops=operations, n_subaccounts=st.integers(2, 3))
def test_fold_agrees_with_the_sql_projection(
    ops: list[tuple[Any, ...]], n_subaccounts: int
) -> None:
    subaccounts = SUBACCOUNTS[:n_subaccounts]
    with fresh_ledger() as (ledger, clock):
        apply_operations(ledger, clock, ops, subaccounts)
        entries = [s.entry for s in ledger.store.read_from(1, 10**9)]
        head = ledger.head()
        grid = valid_time_grid(entries)
        view = ledger.read_model
        for sub in (*subaccounts, NEVER):
            subsets = {number: bundle_subset(entries, sub, number) for number in NUMBERS}
            for t in range(head + 1):
                for number, subset in subsets.items():
                    sql_timeline = view.intervals(TENANT, sub, number, t)
                    assert fold.timeline_from_entries(entries, TENANT, sub, number, t) == (
                        sql_timeline
                    )
                    assert fold.timeline_from_entries(subset, TENANT, sub, number, t) == (
                        sql_timeline
                    )
                for v in grid:
                    found = view.decide_many(TENANT, sub, NUMBERS, v, t)
                    for number, subset in subsets.items():
                        sql = found[number]
                        assert fold.decision_from_entries(entries, TENANT, sub, number, v, t) == sql
                        assert fold.decision_from_entries(subset, TENANT, sub, number, v, t) == sql
            for number in NUMBERS:  # the facade a caller uses, as known now
                now = ledger.timeline(TENANT, sub, number)
                assert fold.timeline_from_entries(entries, TENANT, sub, number, head) == now
                for v in grid[::3]:
                    decided = ledger.decide(TENANT, sub, number, at=v)
                    assert fold.decision_from_entries(entries, TENANT, sub, number, v, head) == (
                        decided
                    )
                    allowed, state, by = fold.decide_from_entries(
                        entries, TENANT, sub, number, v, head
                    )
                    expected_by = decided.decided_by.position if decided.decided_by else None
                    assert (allowed, state, by) == (decided.allowed, decided.state, expected_by)


@given(ops=operations, n=st.integers(0, 2), s=st.integers(0, 3))
def test_bundles_of_random_logs_verify(ops: list[tuple[Any, ...]], n: int, s: int) -> None:
    subaccounts = SUBACCOUNTS
    with fresh_ledger() as (ledger, clock):
        apply_operations(ledger, clock, ops, subaccounts)
        signer = new_signer()
        sub = (*subaccounts, NEVER)[s]
        bundle = build_bundle(ledger, signer, ORIGIN, TENANT, sub, NUMBERS[n])
        verified = verify_bundle(encode_bundle(bundle), signer.verifier_key)
        assert verified.size == ledger.head()
        assert decode_bundle(encode_bundle(bundle)) == bundle


def test_a_consistent_forgery_of_an_entry_fails_at_its_proof(
    signed_document: tuple[dict[str, Any], str],
) -> None:
    """Rewrite an opt-out as an opt-in everywhere the bundle shows it (bytes, leaf hash,
    decoded copy, decision, timeline): only the Merkle proof can catch it, and does."""
    document, key = signed_document
    index = next(
        i for i, e in enumerate(document["entries"]) if e["entry"]["type"] == "consent.revoked"
    )
    item = document["entries"][index]
    entry = json.loads(base64.b64decode(item["bytes"]))
    entry["type"] = entry["event"]["type"] = "consent.granted"
    forged = msgspec.json.encode(msgspec.convert(entry, Entry), order="deterministic")
    item = {
        **item,
        "bytes": base64.b64encode(forged).decode(),
        "leaf_hash": base64.b64encode(leaf_hash(forged)).decode(),
        "entry": msgspec.to_builtins(msgspec.json.decode(forged, type=Entry)),
    }
    document = edited(document, ("entries", index), item)
    with pytest.raises(BundleInvalid, match="inclusion proof does not verify"):
        verify_bundle(json.dumps(document), key)
