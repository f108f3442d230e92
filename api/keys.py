"""API keys: ``cl_<id>_<secret>``; only SHA-256(secret) is stored, compared in constant time.

Guarantees: a key authenticates only while it is not revoked; a tenant key acts only on its own
tenant; an operator key (tenant ``None``) acts on the whole log. Keys are managed by the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Literal

import msgspec

from ledger.errors import InvalidInput, NotFound
from ledger.store import KeyRecord, KeyTable
from ledger.timefmt import now_text

Scope = Literal["ingest", "check", "audit", "admin", "metrics"]
SCOPES: tuple[Scope, ...] = ("ingest", "check", "audit", "admin", "metrics")
"""``metrics`` reads ``/metrics`` when the deployment protects it (the ``metrics`` setting)."""
_KEY = re.compile(r"cl_([a-z0-9]{12})_([A-Za-z0-9_-]{20,128})")


class Principal(msgspec.Struct, frozen=True):
    """Who a request acts as."""

    key_id: str
    tenant: str | None
    scopes: frozenset[str]

    @property
    def operator(self) -> bool:
        """Whether this is a deployment-wide operator key."""
        return self.tenant is None

    @property
    def actor(self) -> str:
        """How entries name this key as their actor."""
        return f"key:{self.key_id}"


class KeyInfo(msgspec.Struct, frozen=True):
    """A key as listed (no secret)."""

    id: str
    tenant: str | None
    scopes: list[str]
    label: str | None
    created_at: str
    revoked_at: str | None


def parse_scopes(text: str) -> list[Scope]:
    """A comma-separated scope list, validated."""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in wanted if s not in SCOPES]
    if bad or not wanted:
        raise InvalidInput(f"unknown scope(s) {bad or text!r}; choose from {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in wanted]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_key(
    keys: KeyTable, *, tenant: str | None, scopes: list[Scope], label: str | None = None
) -> str:
    """Create a key and return it in full (the only time the secret exists outside a hash)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = KeyRecord(
        id=key_id,
        tenant=tenant,
        scopes=tuple(scopes),
        secret_sha256=_digest(secret),
        label=label,
        created_at=now_text(),
    )
    keys.add(record)
    return f"cl_{key_id}_{secret}"


def list_keys(keys: KeyTable) -> list[KeyInfo]:
    """Every key, oldest first, without secrets."""
    return [
        KeyInfo(k.id, k.tenant, list(k.scopes), k.label, k.created_at, k.revoked_at)
        for k in keys.all()
    ]


def revoke_key(keys: KeyTable, key_id: str) -> None:
    """Revoke a key from now on; ``NotFound`` if there is no such unrevoked key."""
    if not keys.revoke(key_id, now_text()):
        raise NotFound(f"there is no active key with id {key_id!r}")


def has_keys(keys: KeyTable) -> bool:
    """Whether any key was ever created."""
    return keys.any()


def authenticate(keys: KeyTable, presented: str) -> Principal | None:
    """The principal of a presented key, or ``None`` if it is malformed, unknown or revoked."""
    match = _KEY.fullmatch(presented.strip())
    if match is None:
        return None
    found = keys.by_id(match.group(1))
    if found is None or found.revoked_at is not None:
        hmac.compare_digest(_digest(match.group(2)), bytes(32))  # same work either way
        return None
    if not hmac.compare_digest(_digest(match.group(2)), found.secret_sha256):
        return None
    return Principal(match.group(1), found.tenant, frozenset(found.scopes))
