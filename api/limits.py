"""Limits on what a request may carry, shared by every route that reads one."""

from __future__ import annotations

from ledger.entries import MAX_KEPT_TEXT

MAX_TEXT_CHARS = MAX_KEPT_TEXT
"""Longest opt-in text accepted, in characters (an opt-out's longer text is kept capped)."""
MAX_ID_CHARS = 128
"""Longest umid or idempotency key used as one, in characters."""
MAX_FIELD_CHARS = 256
"""Longest actor, purpose or notice version accepted, in characters."""
