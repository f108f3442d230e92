"""Domain errors. Plain exceptions; the HTTP layer maps them to RFC 9457 problem details."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose; ``str(err)`` is a one-line message."""


class InvalidInput(LedgerError):
    """Input that the ledger refuses; nothing was written."""


class InvalidNumber(InvalidInput):
    """A phone number that is not a valid E.164 number under docs/consent-rules.md §12."""

    def __init__(self, raw: str, why: str = "not a valid phone number") -> None:
        self.raw = raw
        super().__init__(f"{raw!r} is {why}")


class InvalidTime(InvalidInput):
    """A time that is not RFC 3339 with an offset (or a bare date)."""


class KeywordError(InvalidInput):
    """A keyword list change that is not allowed (empty keyword, mandatory removal, clash)."""


class UnknownSubaccount(InvalidInput):
    """A subaccount that this tenant has never registered nor seen."""


class RetractionError(InvalidInput):
    """A retraction that cannot apply (no such position, other tenant, not retractable)."""


class NotFound(LedgerError):
    """A position, key or record that does not exist (or belongs to another tenant)."""


class Conflict(LedgerError):
    """An idempotency key reused with a different request."""


class Stale(LedgerError):
    """What a request read before appending changed before its append; nothing was written:
    read again and retry."""


class StoreUnavailable(LedgerError):
    """The store cannot accept writes now (disk full, read-only, locked); nothing was written."""


class MigrationError(LedgerError):
    """The database schema cannot be brought up to date (e.g. an applied file was changed)."""


class TamperDetected(LedgerError):
    """Stored data contradicts its own hashes or signatures (the database was edited)."""
