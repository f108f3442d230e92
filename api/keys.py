"""API keys: ``cl_<id>_<secret>``; only SHA-256(secret) is stored, compared in constant time.

Guarantees: a key authenticates only while it is not revoked; a tenant key acts only on its own
tenant; an operator key (tenant ``None``) acts on the whole log. Keys are managed by the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from typing import Literal

import msgspec

from ledger.errors import InvalidInput, NotFound
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
    conn: sqlite3.Connection, *, tenant: str | None, scopes: list[Scope], label: str | None = None
) -> str:
    """Create a key and return it in full (the only time the secret exists outside a hash)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (id, tenant, scopes, secret_sha256, label, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, tenant, ",".join(scopes), _digest(secret), label, now_text()),
    )
    return f"cl_{key_id}_{secret}"


def list_keys(conn: sqlite3.Connection) -> list[KeyInfo]:
    """Every key, oldest first, without secrets."""
    rows = conn.execute(
        "SELECT id, tenant, scopes, label, created_at, revoked_at FROM api_keys "
        "ORDER BY created_at, id"
    ).fetchall()
    return [KeyInfo(r[0], r[1], r[2].split(","), r[3], r[4], r[5]) for r in rows]


def revoke_key(conn: sqlite3.Connection, key_id: str) -> None:
    """Revoke a key from now on; ``NotFound`` if there is no such unrevoked key."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (now_text(), key_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"there is no active key with id {key_id!r}")


def has_keys(conn: sqlite3.Connection) -> bool:
    """Whether any key was ever created."""
    return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None


def authenticate(conn: sqlite3.Connection, presented: str) -> Principal | None:
    """The principal of a presented key, or ``None`` if it is malformed, unknown or revoked."""
    match = _KEY.fullmatch(presented.strip())
    if match is None:
        return None
    row = conn.execute(
        "SELECT tenant, scopes, secret_sha256, revoked_at FROM api_keys WHERE id = ?",
        (match.group(1),),
    ).fetchone()
    if row is None or row[3] is not None:
        hmac.compare_digest(_digest(match.group(2)), bytes(32))  # same work either way
        return None
    if not hmac.compare_digest(_digest(match.group(2)), row[2]):
        return None
    return Principal(match.group(1), row[0], frozenset(row[1].split(",")))
