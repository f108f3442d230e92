"""Times as the ledger writes and reads them: RFC 3339, UTC, ``Z``, milliseconds.

Guarantees: ``format_time`` output always has the shape ``YYYY-MM-DDTHH:MM:SS.mmmZ``, so stored
times sort correctly as strings; ``parse_time`` never accepts a time without an offset.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from ledger.errors import InvalidTime

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time with an offset, or a bare date (00:00Z), into an aware UTC datetime.

    Raises ``InvalidTime`` naming the input for anything else, naive times included.
    """
    text = text.strip()
    if _DATE_ONLY.fullmatch(text):
        try:
            d = date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidTime(f"{text!r} is not a valid date") from exc
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    if not _RFC3339.fullmatch(text):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", text):
            raise InvalidTime(f"{text!r} has no UTC offset; add 'Z' or '+hh:mm'")
        raise InvalidTime(f"{text!r} is not an RFC 3339 time (e.g. 2026-03-02T09:15:27.431Z)")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python parses at most microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise InvalidTime(f"{text!r} is not a valid time") from exc
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds and ``Z`` (truncating)."""
    if moment.tzinfo is None:
        raise InvalidTime("refusing to format a naive datetime")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"  # truncates to milliseconds


def normalize_time(text: str) -> str:
    """Parse then format: the canonical stored form of a user-supplied time."""
    return format_time(parse_time(text))


def utc_now() -> datetime:
    """The current time, aware, UTC."""
    return datetime.now(UTC)


def now_text() -> str:
    """The current time in the canonical stored form."""
    return format_time(utc_now())


FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far a provider timestamp may run ahead of the receive time before it is replaced."""
