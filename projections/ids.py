"""Identifiers: idempotency keys the ledger makes up, and the shape of subaccount ids."""

from __future__ import annotations

import re
import uuid

from ledger.errors import InvalidInput

_SUBACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def new_key(kind: str) -> str:
    """A fresh idempotency key for an entry no client named (``<kind>:<uuid>``)."""
    return f"{kind}:{uuid.uuid4()}"


def is_subaccount_id(text: str) -> bool:
    """Whether ``text`` has the shape of a subaccount id (letters, digits, ``_.:-``, ≤ 64)."""
    return _SUBACCOUNT.fullmatch(text) is not None


def valid_subaccount(text: str) -> str:
    """``text`` if it is a well-formed subaccount id; ``InvalidInput`` naming it otherwise."""
    if not is_subaccount_id(text):
        raise InvalidInput(
            f"{text[:80]!r} is not a valid subaccount id (1–64 letters, digits, '_', '.', ':', '-')"
        )
    return text
