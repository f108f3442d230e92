"""Service settings: passed into ``create_app``, never read at import time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import msgspec

from ledger.errors import InvalidInput
from ledger.location import StoreLocation, parse_location

ENV_PREFIX = "CONSENT_LEDGER_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the HTTP service needs to start."""

    db: str
    """Where the store is: a SQLite file path, ``sqlite:///PATH`` or a ``postgresql://`` URL
    (``ledger.location``); a ``Path`` given here is kept as its text."""
    origin: str = "consent-ledger"
    """The checkpoint origin line (C2SP tlog-checkpoint)."""
    signing_key: Path | None = None
    """Ed25519 key file. SQLite: default ``<db>.signing-key`` beside the database, created on
    first use. PostgreSQL: required to sign (never created silently; ``consent-ledger
    signing-key new``)."""
    checkpoint_interval: float = 60.0
    """Seconds between automatic checkpoints while the log grows (0 disables)."""
    max_body_bytes: int = 1024 * 1024
    reader_threads: int = 2
    """Threads per worker process running the synchronous (database-reading) route handlers.
    Few is best: more threads only contend for the interpreter lock (the README's performance
    section has the measurements)."""
    writer_threads: int = 32
    """Threads per worker process running the API's appends (opt-outs, opt-ins). Appends mostly
    wait for the disk, and the store commits every append waiting at that moment in one durable
    commit, so more waiting appends mean fewer commits per entry. (8x8 webhooks do not use them:
    one intake thread per worker records them a batch at a time.)"""
    bulk_limit: int = 10_000
    pool_size: int = 4
    """Database connections per worker process for reads (PostgreSQL; each worker also has one
    writer connection, and the runner of a background job one more)."""
    retention_interval: float = 86400.0
    """Seconds between the service's evidence-retention runs (one runner per deployment; 0:
    never)."""
    max_import_bytes: int = 50 * 1024 * 1024
    """The largest body ``POST /v1/imports`` takes (streamed to a temporary file)."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """``json``, ``console`` or ``auto`` (console on a TTY, JSON lines otherwise)."""
    reply_dispatch: Literal["on", "off"] = "on"
    """Whether the service dispatches replies and blacklist pushes through 8x8 (with an 8x8
    API key in the environment; one dispatcher per deployment)."""
    metrics: Literal["public", "key"] = "public"
    """Who may read ``/metrics``: anyone (``public``), or only a key with the ``metrics`` scope
    or an operator key (``key``)."""

    def __post_init__(self) -> None:
        if isinstance(self.db, Path):
            msgspec.structs.force_setattr(self, "db", str(self.db))

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables (handed to server worker processes)."""
        out = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not None:
                out[ENV_PREFIX + name.upper()] = str(value)
        return out

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from ``CONSENT_LEDGER_*`` variables (``CONSENT_LEDGER_DB`` is required);
        ``msgspec.ValidationError`` names the first bad or missing value."""
        env = dict(os.environ if env is None else env)
        raw = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.__struct_fields__
            if ENV_PREFIX + name.upper() in env
        }
        return msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)

    @property
    def location(self) -> StoreLocation:
        """The store ``db`` names (``InvalidInput`` when it names none)."""
        return parse_location(self.db)

    @property
    def signing_key_path(self) -> Path:
        """Where the checkpoint signing key lives: ``signing_key``, else (SQLite only) beside
        the database. ``InvalidInput`` for a database URL without ``signing_key``: a store
        shared by several nodes never gets a key made up by one of them."""
        if self.signing_key is not None:
            return self.signing_key
        path = self.location.path
        if path is None:
            raise InvalidInput(
                "a PostgreSQL store needs --signing-key FILE (or CONSENT_LEDGER_SIGNING_KEY) to "
                "sign checkpoints; make one with `consent-ledger signing-key new --out FILE`"
            )
        return path.with_name(path.name + ".signing-key")

    @property
    def creates_signing_key(self) -> bool:
        """Whether a missing key file is created on first use (SQLite only)."""
        return self.location.engine == "sqlite"


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read {kind!r} from the environment")
