"""Replies through 8x8's SMS API and the account blacklist sync: settings and the intake rules.

Guarantees (README "Connecting 8x8", docs/consent-rules.md "Replies"):
- replies are off unless a subaccount's ``replies.configured`` entry names a template; settings
  are configuration entries (the API key is never among them);
- only live requests get a reply (``intent``): an entry received from an 8x8 webhook or an
  Automation step (``8x8-webhook``, ``automation-http`` with an 8x8 message id) whose provider
  timestamp was given, not replaced, and less than ``LIVE_WINDOW`` old when received; never an
  import, an admin, CLI or API entry, a review resolution, a duplicate;
- never a second confirmation: an opt-out (opt-in) whose number was already opted out (in) of
  that scope before it, as the log says (``is_repeat``, also checked again by the dispatcher
  just before it sends), gets none; a HELP is always answered;
- a reply goes from the number the person texted (the entry's ``destination``; else the
  settings' ``sender``) through the subaccount that owns it: the resolved one, or for an
  unresolved opt-out the subaccount whose ``numbers`` hold the number texted — otherwise none;
- the intent says by when it must be sent: the provider timestamp plus ``LIVE_WINDOW``;
- a tenant-wide opt-out of a tenant whose blacklist sync is on is marked ``blacklist``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Literal

import msgspec

from ledger.entries import Entry
from ledger.errors import InvalidInput, UnknownSubaccount
from ledger.events import (
    BlacklistConfigured,
    ConsentRevoked,
    EntryRetracted,
    Method,
    Region,
    RepliesConfigured,
    ReplyIntent,
    ReplyKind,
)
from ledger.msisdn import to_e164
from ledger.store import Appended, Draft
from ledger.timefmt import format_time, parse_time
from projections.eightxeight.templates import validate
from projections.fold import decision_from_entries
from projections.ids import new_key
from projections.ledger import ConsentLedger
from projections.read_model import ReadView

LIVE_WINDOW = timedelta(minutes=5)
"""FCC 47 CFR 64.1200(a)(12): one confirmation, within 5 minutes of the request."""
REGIONS: tuple[Region, ...] = ("ap", "us", "eu", "id")


class ReplySettings(msgspec.Struct, frozen=True, kw_only=True):
    """A subaccount's reply settings as of one ``replies.configured`` entry."""

    subaccount: str
    position: int
    opt_out: str | None
    help: str | None
    opt_in: str | None
    sender: str | None
    region: Region
    numbers: tuple[str, ...]

    def template(self, kind: str) -> str | None:
        """The text of a ``kind`` reply (``None``: that reply is off)."""
        found: str | None = getattr(self, kind, None)
        return found


class BlacklistSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant's blacklist sync as of one ``blacklist.configured`` entry."""

    enabled: bool
    account: str | None
    region: Region
    position: int


def settings_from(entry: Entry) -> ReplySettings | None:
    """Reply settings from a ``replies.configured`` entry."""
    event = entry.event
    if not isinstance(event, RepliesConfigured) or entry.subaccount is None:
        return None
    return ReplySettings(
        subaccount=entry.subaccount,
        position=entry.position,
        opt_out=event.opt_out,
        help=event.help,
        opt_in=event.opt_in,
        sender=event.sender,
        region=event.region,
        numbers=event.numbers,
    )


def reply_settings(view: ReadView, tenant: str, subaccount: str) -> ReplySettings | None:
    """``subaccount``'s current reply settings (``None``: never configured)."""
    found = view.entries_of_types(tenant, ("replies.configured",), subaccount=subaccount)
    return settings_from(found[-1].entry) if found else None


def owner_of(view: ReadView, tenant: str, number: str) -> ReplySettings | None:
    """The reply settings of the subaccount whose numbers hold ``number`` (the newest setting
    of each subaccount counts; ``None`` when none or more than one claims it)."""
    latest: dict[str, ReplySettings] = {}
    for stored in view.entries_of_types(tenant, ("replies.configured",)):
        found = settings_from(stored.entry)
        if found is not None:
            latest[found.subaccount] = found
    owners = [s for s in latest.values() if number in s.numbers]
    return owners[0] if len(owners) == 1 else None


def blacklist_settings(view: ReadView, tenant: str) -> BlacklistSettings | None:
    """The tenant's blacklist sync settings (``None``: never configured, so off)."""
    found = view.entries_of_types(tenant, ("blacklist.configured",))
    if not found:
        return None
    event = found[-1].entry.event
    assert isinstance(event, BlacklistConfigured)
    return BlacklistSettings(
        enabled=event.enabled,
        account=event.account,
        region=event.region,
        position=found[-1].position,
    )


# -- configuration -------------------------------------------------------------------------------
def configure_replies(
    ledger: ConsentLedger,
    tenant: str,
    subaccount: str,
    *,
    actor: str,
    opt_out: str | None = None,
    help: str | None = None,
    opt_in: str | None = None,
    sender: str | None = None,
    region: str = "ap",
    numbers: Sequence[str] = (),
) -> Appended:
    """Append ``subaccount``'s reply settings (every template ``None``: replies off); refuses
    (``InvalidInput``) a template ``templates.validate`` refuses, an unknown region or number,
    and (``UnknownSubaccount``) a subaccount never registered."""
    if ledger.settings(tenant, subaccount) is None:
        raise UnknownSubaccount(f"subaccount {subaccount!r} is not known; register it first")
    if region not in REGIONS:
        raise InvalidInput(f"region {region!r} is not one of {', '.join(REGIONS)}")
    event = RepliesConfigured(
        opt_out=validate(opt_out, "opt-out confirmation") if opt_out else None,
        help=validate(help, "HELP") if help else None,
        opt_in=validate(opt_in, "opt-in confirmation") if opt_in else None,
        sender=_sender(sender) if sender else None,
        region=region,
        numbers=tuple(sorted({to_e164(n, None) for n in numbers})),
        actor=actor,
    )
    draft = Draft(
        tenant=tenant,
        key=new_key("replies"),
        subaccount=subaccount,
        msisdn=None,
        occurred_at=None,
        event=event,
    )
    return ledger.append([draft])[0]


def configure_blacklist(
    ledger: ConsentLedger,
    tenant: str,
    *,
    enabled: bool,
    account: str | None,
    region: str = "ap",
    actor: str,
) -> Appended:
    """Append the tenant's blacklist sync settings (``account``: the 8x8 account id, required
    to turn it on)."""
    if enabled and not account:
        raise InvalidInput("the blacklist sync needs the 8x8 account id")
    if region not in REGIONS:
        raise InvalidInput(f"region {region!r} is not one of {', '.join(REGIONS)}")
    event = BlacklistConfigured(
        enabled=enabled,
        account=account,
        region=region,
        actor=actor,
    )
    draft = Draft(
        tenant=tenant,
        key=new_key("blacklist"),
        subaccount=None,
        msisdn=None,
        occurred_at=None,
        event=event,
    )
    return ledger.append([draft])[0]


def _sender(value: str) -> str:
    value = value.strip()
    if not (value.isascii() and value.replace("+", "").isalnum() and 1 <= len(value) <= 16):
        raise InvalidInput(f"sender {value!r} is not a number or an alphanumeric sender id")
    return value


def destination_of(value: str | None) -> str | None:
    """The number texted as an entry keeps it: a short code or number as received (digits, an
    optional ``+``, at most 17), ``None`` when it is none."""
    if value is None:
        return None
    value = value.strip()
    digits = value.removeprefix("+")
    return value if digits.isascii() and digits.isdigit() and 3 <= len(digits) <= 17 else None


# -- the intake rules ----------------------------------------------------------------------------
Action = Literal["opt_out", "opt_in", "help", "review"]


def is_live(
    method: Method, umid: bool, given: str | None, occurred: str, received: str, replaced: bool
) -> bool:
    """Whether a request is live (see the module guarantees)."""
    if method not in ("8x8-webhook", "automation-http") or given is None or replaced:
        return False
    if method == "automation-http" and not umid:
        return False
    age = parse_time(received) - parse_time(occurred)
    return age < LIVE_WINDOW


def intent(
    view: ReadView,
    entries: Callable[[], Sequence[Entry]],
    *,
    tenant: str,
    action: str,
    scope: str | None,
    subaccount: str | None,
    msisdn: str,
    destination: str | None,
    occurred: str,
    before: int,
) -> ReplyIntent | None:
    """The reply a live request's entry asks for (``None``: none); ``entries`` gives the
    number's entries known at position ``before``, read only when a reply is configured (see
    the module guarantees)."""
    if action not in ("opt_out", "opt_in", "help"):
        return None
    kind: ReplyKind = action  # type: ignore[assignment]
    if subaccount is not None:
        settings = reply_settings(view, tenant, subaccount)
    elif kind == "opt_out" and destination is not None:
        settings = owner_of(view, tenant, destination)
    else:
        settings = None
    if settings is None or settings.template(kind) is None:
        return None
    if destination is None and settings.sender is None:
        return None  # nothing to send it from
    if is_repeat(entries(), tenant, settings.subaccount, msisdn, kind, scope, occurred, before):
        return None
    deadline = format_time(parse_time(occurred) + LIVE_WINDOW)
    return ReplyIntent(
        kind=kind, subaccount=settings.subaccount, settings=settings.position, deadline=deadline
    )


def is_repeat(
    entries: Sequence[Entry],
    tenant: str,
    subaccount: str,
    msisdn: str,
    kind: str,
    scope: str | None,
    occurred: str,
    before: int,
) -> bool:
    """Whether an opt-out (opt-in) of ``msisdn`` at ``occurred`` finds the number already opted
    out (in) of that scope as known at position ``before``: for a subaccount opt-out the
    subaccount's state; for a tenant-wide one, a tenant-wide opt-out decides it. HELP: never."""
    if kind == "help":
        return False
    found = decision_from_entries(entries, tenant, subaccount, msisdn, occurred, before)
    wanted = "opted_out" if kind == "opt_out" else "opted_in"
    if found.state != wanted:
        return False
    if kind != "opt_out" or scope != "tenant" or found.decided_by is None:
        return True
    by = found.decided_by.position
    deciding = next((e for e in entries if e.position == by), None)
    return (
        deciding is not None
        and isinstance(deciding.event, ConsentRevoked)
        and deciding.event.scope == "tenant"
    )


def retracted(entries: Sequence[Entry], position: int) -> bool:
    """Whether a retraction among ``entries`` removed the entry at ``position``."""
    return any(
        isinstance(e.event, EntryRetracted) and e.event.position == position for e in entries
    )
