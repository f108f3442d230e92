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


class Entry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One log entry as stored (docs/evidence.md §1); ``type`` copies the event's tag for
    indexing."""

    v: int = ENTRY_VERSION
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


_entry_decoder = msgspec.json.Decoder(Entry)


class Evidence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Raw evidence of one entry: exactly what was received and from where."""

    raw_body: str | None = None
    """The exact request body as received (decoded as UTF-8 with replacement where invalid)."""
    text: str | None = None
    profile_name: str | None = None
    remote_addr: str | None = None
    request_id: str | None = None
    content_type: str | None = None
    key_id: str | None = None
    """Id of the API key that delivered the request (never the secret)."""


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
