"""The id of the HTTP request being handled, for answers that name it (5xx problem details).

Set by the request log middleware (``api.logs``) around each request; the same id is echoed in
``X-Request-ID`` and logged with every line about the request, so a client holding an answer can
name the log lines that explain it. It is current on the event loop, where errors are mapped to
problem details, and in threads that copy the context (``sync_to_thread`` handlers); not on the
lanes' threads.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar, Token

_CURRENT: ContextVar[str | None] = ContextVar("consent_ledger_request_id", default=None)
_CLIENT_ID = re.compile(rb"[\x21-\x7e]{1,64}")
"""A client's ``X-Request-ID`` that is kept: 1–64 printable ASCII characters, no spaces."""


def chosen(header: bytes | None) -> str:
    """The id of a request: the client's ``X-Request-ID`` when it is 1–64 printable ASCII
    characters (it is stored as evidence and logged), else a fresh random one."""
    if header is not None and _CLIENT_ID.fullmatch(header):
        return header.decode("ascii")
    return os.urandom(16).hex()


def current() -> str | None:
    """The id of the request being handled here (``None`` outside a request)."""
    return _CURRENT.get()


def enter(request_id: str) -> Token[str | None]:
    """Make ``request_id`` current; returns the token that ``leave`` takes."""
    return _CURRENT.set(request_id)


def leave(token: Token[str | None]) -> None:
    """Restore the id current before ``enter`` returned ``token``."""
    _CURRENT.reset(token)
