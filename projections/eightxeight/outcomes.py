"""What an answer from 8x8 means for a reply or a blacklist push: the one rule of when to retry.

Guarantees: only what 8x8 provably did not take is retried (``deferred``): the connection never
established, or 429/503 with a ``Retry-After``; a 4xx with an 8x8 error code is ``failed`` (never
retried); a 2xx is ``sent`` (an SMS ``REJECTED`` status is ``failed``); anything else — no
answer after sending, a 5xx, a 502/504 from a proxy, a 4xx without an 8x8 error code, a body
that cannot be read — is ``uncertain``: never sent again.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Kind = Literal["sent", "failed", "deferred", "uncertain"]
MAX_BACKOFF = 30.0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one call to 8x8 ended."""

    kind: Kind
    reason: str
    umid: str | None = None
    code: str | None = None
    retry_after: float | None = None
    """Seconds to wait before the next attempt (``deferred`` only)."""


def not_connected(reason: str, attempt: int) -> Outcome:
    """The connection was never established: 8x8 took nothing; back off exponentially."""
    wait = min(0.5 * 2 ** max(attempt - 1, 0), MAX_BACKOFF)
    return Outcome(kind="deferred", reason=f"no connection: {reason}", retry_after=wait)


def no_answer(reason: str) -> Outcome:
    """The request may have reached 8x8, and no answer came back."""
    return Outcome(kind="uncertain", reason=f"no answer: {reason}")


def from_answer(status: int, retry_after: str | None, body: Any) -> Outcome:
    """What 8x8's answer ``status`` (with its ``Retry-After`` header and decoded body) means."""
    if 200 <= status < 300:
        return _accepted(body)
    if status in (429, 503):
        wait = _seconds(retry_after)
        if wait is not None:
            why = f"{status}, retry after {wait:g} s"
            return Outcome(kind="deferred", reason=why, retry_after=wait)
    code = body.get("code") if isinstance(body, dict) else None
    if 400 <= status < 500 and status != 429 and isinstance(code, int | str) and str(code):
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        return Outcome(kind="failed", reason=f"{status}: {message}"[:300], code=str(code))
    return Outcome(kind="uncertain", reason=f"8x8 answered {status}")


def _accepted(body: Any) -> Outcome:
    if not isinstance(body, dict):
        return Outcome(kind="sent", reason="accepted")
    umid = body.get("umid") if isinstance(body.get("umid"), str) else None
    status = body.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if code == "REJECTED":
        why = status.get("description") if isinstance(status, dict) else None
        return Outcome(kind="failed", reason=f"rejected: {why}"[:300], code="REJECTED", umid=umid)
    return Outcome(kind="sent", reason="accepted", umid=umid)


def _seconds(value: str | None) -> float | None:
    try:
        wait = float(value) if value is not None else None
    except ValueError:
        return None
    return wait if wait is not None and 0 <= wait <= 3600 else None
