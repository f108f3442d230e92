"""``known_at``: answer as the ledger knew it then, given as a log position or as a time.

The one reading of a ``known_at`` value, shared by the HTTP API and the CLI.

Guarantees: a position is 1 to ``MAX_DIGITS`` ASCII digits (nothing else that Python would read
as a number: no sign, no superscript or other Unicode digit, no digit-group separator) and at
most the log's newest position; anything that is not a position must be an RFC 3339 time with
an offset (or a bare date); anything else is ``InvalidInput``, nothing is answered. A time later
than now is answered as known now, and the answer's ``note`` says so.
"""

from __future__ import annotations

import re

import msgspec

from ledger.errors import InvalidInput
from ledger.timefmt import normalize_time
from projections.read_model import ReadView

MAX_DIGITS = 18
"""Most digits of a position (every 18-digit number is below SQLite's largest, 2^63 − 1)."""
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() is true for "²" and "٣"


class KnownAt(msgspec.Struct, frozen=True, kw_only=True):
    """A ``known_at`` resolved against the log."""

    asked: int | str | None
    """What was asked: a position, a canonical RFC 3339 time, or ``None`` (now)."""
    position: int | None
    """The log position to answer as of; ``None``: everything known now."""
    note: str | None = None
    """Set when the answer is not as of what was asked (a time in the future)."""


def parse_known_at(text: str | None) -> int | str | None:
    """A ``known_at`` as given: a position (``int``), a canonical RFC 3339 time (``str``), or
    ``None`` when absent. Raises ``InvalidInput`` (``InvalidTime`` for a malformed time)."""
    if text is None:
        return None
    text = text.strip()
    if _DIGITS.fullmatch(text):
        if len(text) > MAX_DIGITS:
            shown = text if len(text) <= 24 else text[:24] + "…"
            raise InvalidInput(
                f"{shown} is not a log position: it has {len(text)} digits, a position at "
                f"most {MAX_DIGITS}"
            )
        return int(text)
    return normalize_time(text)


def resolve_known_at(view: ReadView, asked: int | str | None, now: str) -> KnownAt:
    """``asked`` (see ``parse_known_at``) as the log position to answer as of, read in ``view``
    at time ``now`` (canonical). A position beyond the newest entry is ``InvalidInput``; a time
    after ``now`` is answered as of now, with a note."""
    if asked is None:
        return KnownAt(asked=None, position=None)
    if isinstance(asked, int):
        head = view.head()
        if asked > head:
            raise InvalidInput(
                f"there is no log position {asked} yet: the newest is {head} "
                "(ask for a position up to it, or for a time)"
            )
        return KnownAt(asked=asked, position=asked)
    if asked > now:
        note = f"{asked} is in the future; answered as known now ({now})"
        return KnownAt(asked=asked, position=None, note=note)
    return KnownAt(asked=asked, position=view.position_known_at(asked))
