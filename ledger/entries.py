"""Log entries and their evidence: the canonical document, its bytes and its digests.

Guarantees: an entry is encoded exactly once (``encode_entry``) and those bytes are what is stored,
hashed into the Merkle tree and served; ``decode_entry(encode_entry(e)) == e`` and re-encoding a
decoded entry gives the same bytes. Evidence (personal data) is never inside the entry: the entry
holds ``evidence_digest = base64(SHA-256(salt || evidence bytes))`` so evidence can be shown to
match, or erased, without touching any hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import msgspec

from ledger.events import Event
from ledger.merkle import leaf_hash as leaf_hash  # the leaf hash of stored entry bytes

ENTRY_VERSION = 1
SALT_BYTES = 16

_encoder = msgspec.json.Encoder(order="deterministic")


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One log entry as stored (docs/evidence.md §1); ``type`` copies the event's tag for
    indexing. Every field is always encoded but ``occurred_at_requested``, which appears only
    when set (so entries without it keep their exact bytes)."""

    v: int
    position: int
    event_id: str
    key: str
    tenant: str
    subaccount: str | None
    msisdn: str | None
    type: str
    occurred_at: str
    recorded_at: str
    event: Event
    evidence_digest: str | None
    occurred_at_requested: str | None = None
    """The occurred time the request named when it lay after ``recorded_at``: ``occurred_at``
    is then clamped to ``recorded_at`` (a fact is never dated after the ledger knew it, so an
    opt-out is in force from the moment it is recorded; docs/consent-rules.md)."""


_entry_decoder = msgspec.json.Decoder(Entry)


MAX_KEPT_BYTES = 64 * 1024
"""The most bytes of one request body (or one text) kept as evidence or in the quarantine;
beyond that a prefix is kept with the whole body's length and SHA-256 (docs/evidence.md)."""
MAX_KEPT_TEXT = 4096
"""The most characters of a message text kept in evidence (WhatsApp's limit, above any SMS);
a longer text keeps a prefix with its length and SHA-256."""


class ImportOrigin(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Where an imported row came from: the file (name and SHA-256 of its bytes), the row's
    line number in it, and the row's own ``source`` column (free text)."""

    file: str
    sha256: str
    row: int
    source: str | None = None
    date_assumed: str | None = None
    """Set when the row had no date of its own: the ``--as-of`` date it was given."""


class Evidence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Raw evidence of one entry: exactly what was received and from where.

    The request body is kept byte for byte up to ``MAX_KEPT_BYTES``: as ``raw_body`` when it is
    UTF-8, as ``raw_bytes`` when it is not. A longer body keeps that prefix, and
    ``raw_length`` / ``raw_sha256`` describe the whole body. ``text`` likewise keeps at most
    ``MAX_KEPT_TEXT`` characters, with ``text_length`` / ``text_sha256`` when it was longer.
    """

    raw_body: str | None = None
    """The exact request body as received, when it is valid UTF-8 (a prefix when truncated)."""
    text: str | None = None
    profile_name: str | None = None
    remote_addr: str | None = None
    request_id: str | None = None
    content_type: str | None = None
    key_id: str | None = None
    """Id of the API key that delivered the request (never the secret)."""
    raw_bytes: bytes | None = None
    """The exact request body when it is not valid UTF-8 (base64 in JSON)."""
    raw_length: int | None = None
    """Length in bytes of the whole body, set when only a prefix was kept."""
    raw_sha256: str | None = None
    """Hex SHA-256 of the whole body, set when only a prefix was kept."""
    text_length: int | None = None
    """Length in characters of the whole text, set when only a prefix was kept."""
    text_sha256: str | None = None
    """Hex SHA-256 of the whole text (UTF-8), set when only a prefix was kept."""
    recorded_by: str | None = None
    """Who recorded it when no API key did (``cli:<user>`` for the command line)."""
    host: str | None = None
    """The machine a command-line entry was recorded on."""
    imported: ImportOrigin | None = None
    """Set for an imported row: where it came from (``raw_body`` holds the row as read)."""


class KeptBytes(msgspec.Struct, frozen=True, kw_only=True):
    """A body as kept: the exact bytes up to ``MAX_KEPT_BYTES``, and what describes the rest."""

    data: bytes
    length: int | None = None
    """The whole body's length, when ``data`` is a prefix."""
    sha256: str | None = None
    """The whole body's hex SHA-256, when ``data`` is a prefix."""


def keep_bytes(body: bytes) -> KeptBytes:
    """``body`` as evidence and the quarantine keep it (see ``MAX_KEPT_BYTES``)."""
    if len(body) <= MAX_KEPT_BYTES:
        return KeptBytes(data=body)
    return KeptBytes(
        data=body[:MAX_KEPT_BYTES], length=len(body), sha256=hashlib.sha256(body).hexdigest()
    )


def body_evidence(body: bytes, text: str | None, **where: str | None) -> Evidence:
    """Evidence of one request: its body kept exactly (or a described prefix), its text capped
    likewise, and ``where`` (remote address, request id, key id …) as given."""
    kept = keep_bytes(body)
    raw_body: str | None = None
    raw_bytes: bytes | None = None
    try:
        raw_body = kept.data.decode("utf-8")
    except UnicodeDecodeError:
        raw_bytes = kept.data
    text_length = text_sha256 = None
    if text is not None and len(text) > MAX_KEPT_TEXT:
        text_length = len(text)
        text_sha256 = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        text = text[:MAX_KEPT_TEXT]
    return Evidence(
        raw_body=raw_body,
        raw_bytes=raw_bytes,
        raw_length=kept.length,
        raw_sha256=kept.sha256,
        text=text,
        text_length=text_length,
        text_sha256=text_sha256,
        **where,  # type: ignore[arg-type]  # str fields only (remote address, ids)
    )


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of ``entry``: deterministic JSON, the Merkle leaf input."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> Entry:
    """Decode stored bytes; raises ``msgspec.ValidationError``/``DecodeError`` if malformed."""
    return _entry_decoder.decode(data)


def encode_evidence(evidence: Evidence) -> bytes:
    """Canonical bytes of ``evidence`` (what the digest covers)."""
    return _encoder.encode(evidence)


def decode_evidence(data: bytes) -> Evidence:
    """Decode stored evidence bytes."""
    return msgspec.json.decode(data, type=Evidence)


def new_salt() -> bytes:
    """A fresh random salt for one entry's evidence."""
    return os.urandom(SALT_BYTES)


def evidence_digest(salt: bytes, evidence_bytes: bytes) -> str:
    """base64(SHA-256(salt || evidence bytes)), as the entry stores it."""
    return base64.b64encode(hashlib.sha256(salt + evidence_bytes).digest()).decode()


def evidence_matches(digest: str, salt: bytes, evidence_bytes: bytes) -> bool:
    """True when ``salt`` and ``evidence_bytes`` are exactly what ``digest`` was made from."""
    return hmac.compare_digest(digest, evidence_digest(salt, evidence_bytes))


def b64(data: bytes) -> str:
    """Standard base64 text of ``data`` (the JSON form of hashes and bytes)."""
    return base64.b64encode(data).decode()
