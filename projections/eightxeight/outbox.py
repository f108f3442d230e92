"""The outbox: replies through 8x8's SMS API and pushes to 8x8's account blacklist, as the log
has them (a projection: ``replies`` rows kept in step with the log by each engine's projector).

Guarantees:
- a row exists for every entry that asks for a reply (its ``reply`` intent) and for every
  tenant-wide opt-out marked ``blacklist``; its state is a function of the ``reply.*`` entries
  that follow it (``opened`` and ``moved`` are that function; each adapter applies them);
- states: ``pending`` (nothing attempted), ``attempted`` (a call may be under way),
  ``deferred`` (the last attempt provably did not reach 8x8), and the final ``sent``,
  ``failed``, ``uncertain`` (whether 8x8 took it is unknown: never sent again) and ``expired``;
  a delivery receipt may still move ``uncertain`` to ``sent`` or ``failed``;
- the idempotency keys of the outcome entries (``attempt_key``, ``outcome_key``,
  ``settle_key``) make each step happen once per row, whatever the number of dispatchers: the
  next step after attempt n (attempt n + 1, or expiry) has one key.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ledger.entries import Entry
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    Event,
    HelpRequested,
    ReplyAttempted,
    ReplyDeferred,
    ReplyExpired,
    ReplyFailed,
    ReplySent,
    ReplyUncertain,
)

Action = Literal["reply", "blacklist"]
State = Literal["pending", "attempted", "deferred", "sent", "failed", "uncertain", "expired"]
OPEN_STATES: tuple[State, ...] = ("pending", "attempted", "deferred")
STATES: tuple[State, ...] = (*OPEN_STATES, "sent", "failed", "uncertain", "expired")
OUTBOX_TYPES = (
    "reply.attempted",
    "reply.sent",
    "reply.failed",
    "reply.deferred",
    "reply.uncertain",
    "reply.expired",
)


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the outbox: the entry answered (``position``) and where its reply stands."""

    position: int
    action: Action
    tenant: str
    kind: str | None
    """``opt_out``, ``opt_in`` or ``help`` for a reply; ``None`` for a blacklist push."""
    subaccount: str | None
    """The subaccount the reply goes through."""
    msisdn: str
    event_id: str
    """The answered entry's event id: the ``clientMessageId`` sent to 8x8."""
    deadline: str | None = None
    """Nothing is sent after this (replies only)."""
    recorded_at: str
    state: State
    attempts: int
    retry_at: str | None = None
    outcome_position: int | None = None
    """The entry that set the current state (the ``reply.uncertain`` one, for a review)."""
    umid: str | None = None
    code: str | None = None


class OutboxCounts(msgspec.Struct, frozen=True):
    """Rows per (action, state) across tenants, and the oldest open row's recorded time."""

    counts: dict[str, dict[str, int]]
    oldest_open_recorded_at: str | None


def opened(entry: Entry) -> list[Reply]:
    """The outbox rows an entry opens (none for most entries)."""
    event = entry.event
    rows: list[Reply] = []
    if not isinstance(event, ConsentRevoked | ConsentGranted | HelpRequested) or not entry.msisdn:
        return rows
    common = {
        "position": entry.position,
        "tenant": entry.tenant,
        "msisdn": entry.msisdn,
        "event_id": entry.event_id,
        "recorded_at": entry.recorded_at,
        "state": "pending",
        "attempts": 0,
    }
    if event.reply is not None:
        rows.append(
            msgspec.convert(
                {
                    **common,
                    "action": "reply",
                    "kind": event.reply.kind,
                    "subaccount": event.reply.subaccount,
                    "deadline": event.reply.deadline,
                },
                Reply,
            )
        )
    if isinstance(event, ConsentRevoked) and event.blacklist and event.scope == "tenant":
        rows.append(
            msgspec.convert(
                {
                    **common,
                    "action": "blacklist",
                    "kind": None,
                    "subaccount": None,
                    "deadline": None,
                },
                Reply,
            )
        )
    return rows


OutboxEvent = (
    ReplyAttempted | ReplySent | ReplyFailed | ReplyDeferred | ReplyUncertain | ReplyExpired
)


def target(event: Event) -> tuple[int, Action] | None:
    """The outbox row (position, action) an outcome entry moves, if it is one."""
    if isinstance(event, OutboxEvent):
        return event.position, "blacklist" if event.action == "blacklist" else "reply"
    return None


def moved(row: Reply, event: Event, at: int) -> Reply:
    """``row`` after the outcome entry ``event`` at position ``at``."""
    change: dict[str, object] = {"outcome_position": at, "retry_at": None}
    if isinstance(event, ReplyAttempted):
        change |= {"state": "attempted", "attempts": event.attempt}
    elif isinstance(event, ReplyDeferred):
        change |= {"state": "deferred", "retry_at": event.retry_at}
    elif isinstance(event, ReplySent):
        change |= {"state": "sent", "umid": event.umid or row.umid}
    elif isinstance(event, ReplyFailed):
        change |= {"state": "failed", "code": event.code}
    elif isinstance(event, ReplyUncertain):
        change |= {"state": "uncertain"}
    elif isinstance(event, ReplyExpired):
        change |= {"state": "expired"}
    return msgspec.structs.replace(row, **change)


# -- idempotency keys of the outcome entries -----------------------------------------------------
def attempt_key(row: Reply, attempt: int) -> str:
    """The key of attempt ``attempt`` (or of the expiry that takes its place)."""
    return f"outbox:{row.action}:{row.event_id}:{attempt}"


def outcome_key(row: Reply, attempt: int) -> str:
    """The key of the outcome of attempt ``attempt``."""
    return f"outbox:{row.action}:{row.event_id}:{attempt}:outcome"


def settle_key(row: Reply) -> str:
    """The key of the settlement of an uncertain row by a delivery receipt."""
    return f"outbox:{row.action}:{row.event_id}:settled"
