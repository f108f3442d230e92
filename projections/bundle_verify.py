"""Offline verification of an evidence bundle: nothing but the bundle and the verifier key.

Guarantees: ``verify_bundle`` opens no database and trusts nothing in the bundle that it has not
checked. It returns only when every field of the bundle is covered by the checkpoint signature or
a hash, or equals what it recomputes (``projections.evidence`` lists which is which), and raises
``BundleInvalid`` naming the first failure otherwise. What a successful verification shows: each
entry is in the log the key signed, its evidence (unless erased) is what the entry committed to,
and the decision and timeline follow from the entries. Not that no other entry exists.
"""

from __future__ import annotations

import base64
import binascii
from itertools import pairwise
from typing import Any

import msgspec

from ledger import merkle
from ledger.checkpoint import Checkpoint, open_note, parse_verifier_key
from ledger.entries import (
    Entry,
    b64,
    decode_entry,
    decode_evidence,
    evidence_matches,
    leaf_hash,
)
from ledger.errors import InvalidInput
from ledger.msisdn import is_canonical
from ledger.timefmt import normalize_time
from projections import fold
from projections.decisions import Decision
from projections.erasure import erasure_notes
from projections.evidence import (
    EVIDENCE_NOTES,
    FORMAT,
    STATEMENT,
    Bundle,
    BundleCheckpoint,
    BundleEntry,
    BundleEvidence,
    decode_bundle,
    erased_note,
)
from projections.ids import is_subaccount_id

_canonical = msgspec.json.Encoder(order="deterministic")


class BundleInvalid(InvalidInput):
    """A bundle that does not verify; the message names the first failure in one line."""


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified bundle shows."""

    tenant: str
    subaccount: str
    msisdn: str
    entries: int
    origin: str
    size: int
    root: str
    evidence_kept: int
    evidence_absent: int
    state: str
    allowed: bool
    decided_by: int | None
    generated_at: str

    def summary(self) -> str:
        """One line saying what was verified, and what the proofs do not show."""
        by = f" (position {self.decided_by})" if self.decided_by is not None else ""
        verdict = "may send" if self.allowed else "may not send"
        return (
            f"OK: {self.entries} entries bearing on {self.msisdn} for {self.subaccount} "
            f"(tenant {self.tenant}) are in log {self.origin!r} at tree size {self.size}; "
            f"evidence matched {self.evidence_kept}, erased or absent {self.evidence_absent}; "
            f"at {self.generated_at}: {self.state}{by}, {verdict}. The proofs show these entries "
            "are in the log, not that no other entry exists."
        )


def verify_bundle(document: bytes | str, verifier_key: str) -> Verified:
    """Verify an evidence bundle against ``verifier_key`` (``<name>+<hex id>+<base64 key>``).

    Raises ``BundleInvalid`` with a one-line reason at the first check that fails.
    """
    try:
        bundle = decode_bundle(document)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleInvalid(f"not a {FORMAT} document: {exc}") from None
    _check_fixed(bundle)
    checkpoint = _check_checkpoint(bundle.checkpoint, verifier_key)
    entries = [_check_entry(i, item, bundle, checkpoint) for i, item in enumerate(bundle.entries)]
    _check_order(entries)
    _check_question(bundle, entries)
    _check_roles(bundle, entries)
    _check_generated_at(bundle, entries)
    _check_erased_notes(bundle, entries)
    decision = _check_recomputed(bundle, entries, checkpoint)
    kept = sum(1 for e in bundle.entries if e.evidence and e.evidence.status == "kept")
    return Verified(
        tenant=bundle.tenant,
        subaccount=bundle.subaccount,
        msisdn=bundle.msisdn,
        entries=len(entries),
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=b64(checkpoint.root),
        evidence_kept=kept,
        evidence_absent=sum(1 for e in bundle.entries if e.evidence) - kept,
        state=decision.state,
        allowed=decision.allowed,
        decided_by=decision.decided_by.position if decision.decided_by else None,
        generated_at=bundle.generated_at,
    )


# -- checks, in order ---------------------------------------------------------------------------


def _check_fixed(bundle: Bundle) -> None:
    if bundle.format != FORMAT:
        raise BundleInvalid(f"format is {bundle.format[:60]!r}; this verifier reads {FORMAT}")
    if bundle.statement != STATEMENT:
        raise BundleInvalid(f"statement is not the fixed statement of {FORMAT}")


def _check_checkpoint(part: BundleCheckpoint, verifier_key: str) -> Checkpoint:
    given = verifier_key.strip()
    try:
        parse_verifier_key(given)
    except InvalidInput as exc:
        raise BundleInvalid(f"the verifier key given is not valid: {exc}") from None
    if part.verifier_key != given:
        raise BundleInvalid(
            "checkpoint.verifier_key is not the verifier key given "
            f"(the bundle names {part.verifier_key[:120]!r})"
        )
    try:
        checkpoint = open_note(part.note, given)
    except InvalidInput as exc:
        raise BundleInvalid(f"checkpoint.note: {exc}") from None
    shown = (part.origin, part.size, part.root)
    if shown != (checkpoint.origin, checkpoint.size, b64(checkpoint.root)):
        raise BundleInvalid("checkpoint origin, size or root differ from the signed note")
    return checkpoint


def _check_entry(index: int, item: BundleEntry, bundle: Bundle, checkpoint: Checkpoint) -> Entry:
    where = f"entries[{index}]"
    data = _unb64(item.bytes, f"{where}.bytes")
    try:
        entry = decode_entry(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleInvalid(f"{where}.bytes are not a log entry: {exc}") from None
    where = f"entry at position {entry.position}"
    if item.position != entry.position:
        raise BundleInvalid(f"{where}: position {item.position} differs from its bytes")
    leaf = leaf_hash(data)
    if item.leaf_hash != b64(leaf):
        raise BundleInvalid(f"{where}: leaf_hash is not the hash of its bytes")
    proof = [_unb64(h, f"{where}: inclusion_proof element") for h in item.inclusion_proof]
    if not merkle.verify_inclusion(
        entry.position - 1, checkpoint.size, leaf, proof, checkpoint.root
    ):
        raise BundleInvalid(
            f"{where}: inclusion proof does not verify against the checkpoint root at tree size "
            f"{checkpoint.size}"
        )
    if _canon(item.entry) != _canon(msgspec.to_builtins(entry)):
        raise BundleInvalid(f"{where}: the decoded entry differs from the decode of its bytes")
    if entry.tenant != bundle.tenant:
        raise BundleInvalid(f"{where}: belongs to another tenant than {bundle.tenant!r}")
    _check_evidence(where, item.evidence, entry.evidence_digest)
    return entry


def _check_evidence(where: str, part: BundleEvidence | None, digest: str | None) -> None:
    if digest is None:
        if part is not None:
            raise BundleInvalid(f"{where}: evidence given for an entry without an evidence digest")
        return
    if part is None:
        raise BundleInvalid(f"{where}: the entry has an evidence digest but no evidence part")
    if part.status != "kept":
        absent = (part.salt, part.content, part.decoded) == (None, None, None)
        fixed = EVIDENCE_NOTES[part.status]
        noted = part.note == fixed or (
            part.status == "erased" and (part.note or "").endswith(fixed)
        )
        if not absent or not noted:
            raise BundleInvalid(f"{where}: {part.status} evidence must hold only its fixed note")
        return
    salt = _unb64(part.salt, f"{where}: evidence salt")
    content = _unb64(part.content, f"{where}: evidence content")
    if not evidence_matches(digest, salt, content):
        raise BundleInvalid(f"{where}: evidence salt and content do not match its evidence_digest")
    try:
        decoded = msgspec.to_builtins(decode_evidence(content))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleInvalid(f"{where}: evidence content is not evidence: {exc}") from None
    if _canon(part.decoded) != _canon(decoded) or part.note is not None:
        raise BundleInvalid(f"{where}: decoded evidence differs from the decode of its content")


def _check_erased_notes(bundle: Bundle, entries: list[Entry]) -> None:
    """Each erased evidence note is the one the bundle's tombstones give (recomputed)."""
    tombstones = erasure_notes(entries)
    for item, entry in zip(bundle.entries, entries, strict=True):
        part = item.evidence
        expected = erased_note(tombstones.get(entry.position))
        if part is not None and part.status == "erased" and part.note != expected:
            raise BundleInvalid(
                f"entry at position {entry.position}: the erasure note is not what the "
                "bundle's tombstone entries say"
            )


def _check_order(entries: list[Entry]) -> None:
    for before, after in pairwise(entries):
        if after.position <= before.position:
            raise BundleInvalid(
                f"entry at position {after.position} follows position {before.position}: "
                "entries must be in increasing position order"
            )


def _check_question(bundle: Bundle, entries: list[Entry]) -> None:
    if not is_subaccount_id(bundle.subaccount):
        raise BundleInvalid(f"subaccount {bundle.subaccount[:80]!r} is not a subaccount id")
    if not is_canonical(bundle.msisdn):
        raise BundleInvalid(f"msisdn {bundle.msisdn[:80]!r} is not an E.164 number")
    if not bundle.tenant:
        raise BundleInvalid("tenant is empty")


def _check_roles(bundle: Bundle, entries: list[Entry]) -> None:
    question = (bundle.tenant, bundle.subaccount, bundle.msisdn)
    numbers = {e.position for e in entries if fold.relevance(e, *question, ()) == "number"}
    for item, entry in zip(bundle.entries, entries, strict=True):
        role = fold.relevance(entry, *question, numbers)
        if role is None:
            raise BundleInvalid(
                f"entry at position {entry.position} does not bear on {bundle.msisdn} for "
                f"{bundle.subaccount}"
            )
        if item.role != role:
            raise BundleInvalid(
                f"entry at position {entry.position}: role is {role}, not {item.role}"
            )


def _check_generated_at(bundle: Bundle, entries: list[Entry]) -> None:
    try:
        canonical = normalize_time(bundle.generated_at)
    except InvalidInput:
        canonical = None
    if canonical != bundle.generated_at:
        raise BundleInvalid("generated_at is not an RFC 3339 UTC time with milliseconds and Z")
    newest = max((e.recorded_at for e in entries), default="")
    if bundle.generated_at < newest:
        raise BundleInvalid(
            f"generated_at is earlier than the newest entry's recorded time {newest}"
        )


def _check_recomputed(bundle: Bundle, entries: list[Entry], checkpoint: Checkpoint) -> Decision:
    question = (bundle.tenant, bundle.subaccount, bundle.msisdn)
    decision = fold.decision_from_entries(entries, *question, bundle.generated_at, checkpoint.size)
    if _canon(bundle.decision) != _canon(msgspec.to_builtins(decision)):
        raise BundleInvalid(
            f"the decision does not follow from the entries (recomputed: {decision.state}, "
            f"{decision.reason})"
        )
    timeline = fold.timeline_from_entries(entries, *question, checkpoint.size)
    if _canon(bundle.timeline) != _canon(msgspec.to_builtins(timeline)):
        raise BundleInvalid("the timeline does not follow from the entries")
    return decision


# -- helpers ------------------------------------------------------------------------------------


def _canon(value: Any) -> bytes:
    """Canonical JSON of a JSON value (so 1, 1.0 and true stay different)."""
    return _canonical.encode(value)


def _unb64(text: str | None, what: str) -> bytes:
    """Strict base64: standard alphabet, padded, canonical (re-encoding gives ``text``)."""
    if text is None:
        raise BundleInvalid(f"{what} is missing")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BundleInvalid(f"{what} is not valid base64") from None
    if b64(data) != text:
        raise BundleInvalid(f"{what} is not canonical base64")
    return data
