"""Where the ledger's store is: the one reading of ``--db`` / ``CONSENT_LEDGER_DB``.

Accepted forms: a filesystem path (SQLite, ``~`` expanded), ``sqlite:///absolute/path`` or
``sqlite:relative/path``, and ``postgresql://user:password@host:port/database?options`` (also
``postgres://``). Guarantees: ``masked`` never contains a password (neither the URL's nor a
``password=`` query parameter), so it is what messages and logs show; an unknown scheme is
refused with ``InvalidInput`` naming the accepted forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ledger.errors import InvalidInput

Engine = Literal["sqlite", "postgresql"]
MASK = "***"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store location."""

    engine: Engine
    path: Path | None = None
    """The SQLite file (``engine == "sqlite"``)."""
    url: str | None = None
    """The PostgreSQL connection URL, password included (``engine == "postgresql"``): hand it
    to the driver only, never to a message."""

    @property
    def masked(self) -> str:
        """The location for people: the path, or the URL with any password replaced."""
        if self.path is not None:
            return str(self.path)
        assert self.url is not None
        return mask_url(self.url)

    def __str__(self) -> str:
        return self.masked


def parse_location(raw: str | Path) -> StoreLocation:
    """Read a ``--db`` value (see the module)."""
    if isinstance(raw, Path):
        return StoreLocation("sqlite", path=raw.expanduser())
    text = raw.strip()
    if not text:
        raise InvalidInput("the database location is empty")
    scheme = text.split(":", 1)[0].lower() if "://" in text or text.startswith("sqlite:") else ""
    if scheme in ("postgresql", "postgres"):
        return StoreLocation("postgresql", url=text)
    if scheme == "sqlite":
        rest = text.split(":", 1)[1]
        path = rest[2:] if rest.startswith("//") else rest  # sqlite:///abs → /abs
        if not path:
            raise InvalidInput("a sqlite: location needs a path, e.g. sqlite:///var/lib/ledger.db")
        return StoreLocation("sqlite", path=Path(path).expanduser())
    if scheme:
        raise InvalidInput(
            f"unknown database scheme {scheme!r}: give a file path, sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        )
    return StoreLocation("sqlite", path=Path(text).expanduser())


def mask_url(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` parameter masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":" + MASK
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
