"""Evidence bundles: one self-contained JSON document a third party verifies offline.

``build_bundle`` signs a checkpoint on demand (so it covers the newest entry) and gathers, as of
that checkpoint's tree size, every entry that bears on one number for one subaccount of one
tenant — the number's own entries, tenant-wide and unresolved ones, the retractions and review
resolutions that target them, and the subaccount's and tenant's configuration entries (the
``unknown`` rule and ``revoke_all`` depend on them) — each as stored bytes and decoded, with its
inclusion proof and its evidence, plus the decision and timeline as known at that size.
``projections.bundle_verify.verify_bundle`` checks a bundle with nothing but the verifier key.

Format ``consent-ledger-evidence/1`` (top-level keys in this order)::

    format, statement, tenant, subaccount, msisdn, generated_at,
    decision, timeline, checkpoint{origin, size, root, note, verifier_key},
    entries[{position, role, leaf_hash, bytes, entry, inclusion_proof,
             evidence: null | {status, salt, content, decoded, note}}]

Every field is either covered (by a hash or the signature) or recomputed by the verifier; the
verifier ignores no field and refuses unknown ones:

- ``checkpoint.note`` — covered: the Ed25519 signature of the verifier key given on the command
  line must verify over it (C2SP signed note).
- ``checkpoint.verifier_key`` — must equal, character for character, the key the verifier is
  given (a bundle cannot vouch for its own key).
- ``checkpoint.origin``, ``.size``, ``.root`` — recomputed: parsed from the signed note.
- ``entries[].bytes`` — covered: SHA-256(0x00 || bytes) must verify, with
  ``inclusion_proof`` at leaf ``position − 1``, against the signed root at the signed size.
- ``entries[].inclusion_proof`` — covered: every element takes part in that verification
  (canonical base64 of 32 bytes each, length checked by RFC 9162 verification).
- ``entries[].position``, ``.leaf_hash``, ``.entry`` — recomputed from ``bytes`` (the decoded copy
  is compared with a fresh decode of the bytes, never trusted).
- ``entries[].role`` — recomputed from the decoded entry and the question (``tenant``,
  ``subaccount``, ``msisdn``): an entry with no role is refused. Entries must be in strictly
  increasing position order.
- ``entries[].evidence`` — ``salt`` and ``content`` covered: SHA-256(salt || content) must equal
  the entry's ``evidence_digest`` (itself covered by the bytes); ``decoded`` recomputed from
  ``content``; ``status`` and ``note`` recomputed (``kept``: note null; ``erased``/``missing``:
  salt, content and decoded null, note the fixed text below — for erased evidence that a
  tombstone entry of the bundle names, "evidence erased on D: R" from that entry first). An
  entry without a digest must have ``evidence: null``, and one with a digest must not.
- ``tenant`` — recomputed: every entry's tenant must equal it.
- ``subaccount``, ``msisdn`` — the question; recomputed through every entry's role, and checked
  for form (a subaccount id, an E.164 number). With no entries at all they (and ``tenant``)
  only name the question asked: there is nothing to check them against.
- ``generated_at`` — the valid time of the decision: canonical RFC 3339 UTC, no earlier than the
  newest entry's recorded time, and equal to ``decision.at`` (it is an input of the recomputed
  decision).
- ``decision``, ``timeline`` — recomputed with ``projections.fold`` from the entries' bytes, for
  valid time ``generated_at`` as known at the checkpoint's size; must be equal field for field.
- ``format``, ``statement`` — recomputed: fixed texts of this format version.

What the proofs do not show: that no other entry about the number exists. A bundle from which a
whole entry was removed (and the decision adjusted to match) still verifies; that is what
``STATEMENT`` says, and why completeness needs the whole log (``consent-ledger verify``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ledger.checkpoint import Signer
from ledger.entries import b64, decode_evidence
from ledger.store import StoredEntry
from projections import audit, fold
from projections.erasure import erasure_notes
from projections.ledger import ConsentLedger

FORMAT = "consent-ledger-evidence/1"
"""The format and version of every bundle this module writes."""

STATEMENT = (
    "Each entry in this bundle is in the log signed by the checkpoint it carries: the entry's "
    "stored bytes hash to a leaf that its inclusion proof places in the tree whose root and "
    "size the checkpoint signs. The proofs show that these entries are in the log; they do not "
    "show that no other entry exists. The decision and timeline follow from these entries, as "
    "known at the checkpoint's tree size, for valid time generated_at."
)
"""The fixed statement of what a bundle proves and what it does not."""

ERASED_NOTE = (
    "The evidence of this entry was erased (salt and content). The entry keeps its "
    "evidence_digest, still covered by the entry's hash; the evidence can no longer be shown."
)
MISSING_NOTE = (
    "The ledger holds no evidence for this entry although the entry names an evidence_digest."
)
EVIDENCE_NOTES = {"erased": ERASED_NOTE, "missing": MISSING_NOTE}
"""The fixed note of each evidence status other than ``kept``."""


def erased_note(tombstone: str | None) -> str:
    """The note of erased evidence: what the bundle's tombstone naming the entry says
    ("evidence erased on D: R", see ``projections.erasure.erasure_notes``) before the fixed
    note, or the fixed note alone when no tombstone of the bundle names it."""
    return ERASED_NOTE if tombstone is None else f"{tombstone}. {ERASED_NOTE}"


EvidenceStatus = Literal["kept", "erased", "missing"]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the bundle's parts: decoding refuses unknown fields."""


class BundleEvidence(_Strict, frozen=True):
    """An entry's evidence: salt and content (base64) as kept, or a note why they are absent."""

    status: EvidenceStatus
    salt: str | None
    content: str | None
    decoded: Any
    """The content decoded (``ledger.entries.Evidence`` as JSON); ``None`` unless kept."""
    note: str | None


class BundleEntry(_Strict, frozen=True):
    """One log entry: its stored bytes, their decode, its inclusion proof and its evidence."""

    position: int
    role: fold.Role
    leaf_hash: str
    bytes: str
    entry: Any
    """The decode of ``bytes`` (``ledger.entries.Entry`` as JSON)."""
    inclusion_proof: list[str]
    evidence: BundleEvidence | None


class BundleCheckpoint(_Strict, frozen=True):
    """The signed checkpoint every proof is made against, and the key that signed it."""

    origin: str
    size: int
    root: str
    note: str
    verifier_key: str


class Bundle(_Strict, frozen=True):
    """An evidence bundle (``FORMAT``); see the module docstring for what covers each field."""

    format: str
    statement: str
    tenant: str
    subaccount: str
    msisdn: str
    generated_at: str
    decision: Any
    """``projections.decisions.Decision`` as JSON."""
    timeline: Any
    """A list of ``projections.timeline.Interval`` as JSON."""
    checkpoint: BundleCheckpoint
    entries: list[BundleEntry]


def build_bundle(
    ledger: ConsentLedger, signer: Signer, origin: str, tenant: str, subaccount: str, msisdn: str
) -> Bundle:
    """The evidence bundle of E.164 ``msisdn`` for ``subaccount`` of ``tenant``.

    Signs a checkpoint of the whole log first (unless the newest one already covers the newest
    entry); everything in the bundle is as of that checkpoint's size. Another tenant's entries
    never appear: a number the tenant holds nothing about gives a bundle without its entries.
    """
    record = ledger.sign_checkpoint(signer, origin)
    assert record is not None  # no min_interval: always a checkpoint covering the newest entry
    size = record.size
    found = audit.trail(ledger, tenant, subaccount, msisdn)
    chosen = {s.position: s for s in [*found.entries, *found.configuration] if s.position <= size}
    stored = [chosen[p] for p in sorted(chosen)]
    positions = [s.position for s in stored]
    evidence = audit.evidence_of(ledger, positions)
    with ledger.read_model.snapshot() as view:
        proofs = {p: view.inclusion_proof(p, size) for p in positions}
    newest = max((s.entry.recorded_at for s in stored), default="")
    generated_at = max(ledger.now(), newest)
    decision = ledger.decide(tenant, subaccount, msisdn, at=generated_at, known_at=size)
    timeline = ledger.timeline(tenant, subaccount, msisdn, known_at=size)
    return Bundle(
        format=FORMAT,
        statement=STATEMENT,
        tenant=tenant,
        subaccount=subaccount,
        msisdn=msisdn,
        generated_at=generated_at,
        decision=msgspec.to_builtins(decision),
        timeline=msgspec.to_builtins(timeline),
        checkpoint=BundleCheckpoint(
            origin=origin,
            size=size,
            root=b64(record.root),
            note=record.note,
            verifier_key=signer.verifier_key,
        ),
        entries=_entries(stored, proofs, evidence, tenant, subaccount, msisdn),
    )


def encode_bundle(bundle: Bundle) -> bytes:
    """The bundle as an indented UTF-8 JSON document (what ``verify_bundle`` reads)."""
    return msgspec.json.format(msgspec.json.encode(bundle), indent=2) + b"\n"


def decode_bundle(data: bytes | str) -> Bundle:
    """Parse a bundle document; ``msgspec.ValidationError``/``DecodeError`` names what is wrong
    (a missing, mistyped or unknown field)."""
    return msgspec.json.decode(data, type=Bundle)


def evidence_part(
    digest: str | None,
    row: tuple[bytes | None, bytes | None] | None,
    tombstone: str | None = None,
) -> BundleEvidence | None:
    """The evidence part of an entry with ``evidence_digest`` ``digest`` and evidence ``row``
    (salt, content), ``None`` when the entry has no evidence digest (``tombstone``: what a
    tombstone of the bundle says of its erasure)."""
    if digest is None:
        return None
    salt, content = row if row is not None else (None, None)
    if salt is None or content is None:
        status: EvidenceStatus = "missing" if row is None else "erased"
        note = MISSING_NOTE if status == "missing" else erased_note(tombstone)
        return BundleEvidence(status=status, salt=None, content=None, decoded=None, note=note)
    return BundleEvidence(
        status="kept",
        salt=b64(salt),
        content=b64(content),
        decoded=msgspec.to_builtins(decode_evidence(content)),
        note=None,
    )


def _entries(
    stored: list[StoredEntry],
    proofs: dict[int, list[bytes]],
    evidence: audit.Evidence,
    tenant: str,
    subaccount: str,
    msisdn: str,
) -> list[BundleEntry]:
    decoded = [(s, s.entry) for s in stored]
    numbers = {
        s.position
        for s, e in decoded
        if fold.relevance(e, tenant, subaccount, msisdn, ()) == "number"
    }
    tombstones = erasure_notes(e for _, e in decoded)
    out = []
    for s, entry in decoded:
        role = fold.relevance(entry, tenant, subaccount, msisdn, numbers)
        if role is None:  # the audit trail and the fold disagree on what bears on the number
            raise RuntimeError(f"entry {s.position} does not bear on the number")
        out.append(
            BundleEntry(
                position=s.position,
                role=role,
                leaf_hash=b64(s.leaf_hash),
                bytes=b64(s.data),
                entry=msgspec.to_builtins(entry),
                inclusion_proof=[b64(h) for h in proofs[s.position]],
                evidence=evidence_part(
                    entry.evidence_digest, evidence.get(s.position), tombstones.get(s.position)
                ),
            )
        )
    return out
