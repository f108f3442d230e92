"""Identifiers: what counts as an id, the shape of subaccount ids, and idempotency keys.

Guarantees (docs/consent-rules.md, "Ids and idempotency"):
- a value that is empty, blank, ``undefined``, ``null`` or holds ``{{`` (a template an
  automation left unrendered) is *no id*: ``usable_id`` returns ``None`` for it, whatever field
  it came in;
- subaccount ids follow 8x8's rules (letters, digits, ``_ - . & :``), at most 64 characters;
- an idempotency key never carries personal text: an id that is not well formed enters a key
  only as its digest;
- every key a client can name lives in its own namespace (``8x8:`` for an 8x8 message id,
  ``api:`` for a client's idempotency key), so no client key can take another path's key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from ledger.errors import InvalidInput

_SUBACCOUNT = re.compile(r"[A-Za-z0-9_.:&-]{1,64}")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+/=~-]{0,127}")
_NOT_IDS = frozenset({"undefined", "null", "none", "nil", "nan"})

UMID_PREFIX = "8x8:"
"""Namespace of keys made from an 8x8 message id (webhook and Automation Builder alike)."""
CLIENT_PREFIX = "api:"
"""Namespace of keys a client chose (``idempotency_key``, the CLI's ``--idempotency-key``)."""


def new_key(kind: str) -> str:
    """A fresh idempotency key for an entry no client named (``<kind>:<uuid>``)."""
    return f"{kind}:{uuid.uuid4()}"


def usable_id(value: Any) -> str | None:
    """``value`` stripped when it can serve as an id, ``None`` when it is no id (see module).

    Integers are ids in decimal form (8x8 ids are strings, but older integrations send numbers).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or "{{" in text or "}}" in text or text.lower() in _NOT_IDS:
        return None
    return text


def is_subaccount_id(text: str) -> bool:
    """Whether ``text`` has the shape of a subaccount id (8x8's characters, 1–64 long)."""
    return (
        _SUBACCOUNT.fullmatch(text) is not None
        and _ALNUM.search(text) is not None
        and usable_id(text) is not None
    )


def valid_subaccount(text: str) -> str:
    """``text`` if it is a well-formed subaccount id; ``InvalidInput`` naming it otherwise."""
    if not is_subaccount_id(text):
        raise InvalidInput(
            f"{text[:80]!r} is not a valid subaccount id "
            "(1–64 letters, digits, '_', '-', '.', '&', ':'; not 'undefined', 'null' or a template)"
        )
    return text


def digest(*parts: str) -> str:
    """A stable hex digest of ``parts`` (each length-prefixed, so no two lists collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", errors="surrogatepass")
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def key_part(value: str) -> str:
    """``value`` as it may appear inside a key: itself when well formed, else its digest."""
    if _WELL_FORMED_ID.fullmatch(value):
        return value
    return "sha256:" + digest(value)[:32]


def umid_key(umid: str) -> str:
    """The idempotency key of an 8x8 message id (shared by the webhook and Automation steps)."""
    return UMID_PREFIX + key_part(umid)


def client_key(key: str) -> str:
    """The idempotency key of a key a client chose (API ``idempotency_key``, CLI)."""
    return CLIENT_PREFIX + key_part(key)


def message_key(source: str, destination: str | None, timestamp: str, text: str) -> str:
    """The key of an 8x8 message without a usable umid: a digest of what identifies it.

    Only for messages with a provider timestamp: without one, two STOPs of one person would
    share a key, so such a message gets no key of its own (a repeated opt-out is harmless).
    """
    return UMID_PREFIX + "msg-" + digest(source, destination or "", timestamp, text)[:40]


def reused_key(key: str, msisdn: str, text: str | None) -> str:
    """The key an entry takes when ``key`` already names another person's or text's entry."""
    return f"{key}~{digest(msisdn, text or '')[:16]}"
