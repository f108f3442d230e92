"""Consent events: frozen structs in one tagged union with explicit, stable tags.

Guarantees: the tag of each class (``consent.revoked`` …) is what is stored, so renaming a class
never changes stored bytes; fields left at their default are omitted when encoded, so adding an
optional field later leaves every earlier entry's bytes (and hashes) valid. Field order is part of
the stored format: append new fields at the end, never reorder.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ledger.keywords import KeywordChanges, Mode

Scope = Literal["subaccount", "tenant"]
Method = Literal["8x8-webhook", "automation-http", "api", "import", "admin"]
Unknown = Literal["allow", "deny"]
ReviewAction = Literal["opt_out", "dismiss", "assign", "accept"]

METHODS: tuple[Method, ...] = ("8x8-webhook", "automation-http", "api", "import", "admin")


ReplyKind = Literal["opt_out", "opt_in", "help"]
Region = Literal["ap", "us", "eu", "id"]


class ReplyIntent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A reply an entry asks for: what (``kind``), through which subaccount, with the reply
    settings of the ``replies.configured`` entry at ``settings`` (projections/eightxeight)."""

    kind: ReplyKind
    subaccount: str
    settings: int
    deadline: str
    """Nothing is sent after this time (the provider timestamp plus 5 minutes)."""


class _Event(
    msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True, kw_only=True, gc=False
):
    """Common base: every event is frozen, tagged by ``type`` and omits default fields; events
    are plain data that can never be part of a reference cycle, so the garbage collector does
    not track them (``gc=False``: replaying a million entries is then not mostly GC passes)."""


class ConsentRevoked(_Event, frozen=True, tag="consent.revoked"):
    """The person withdrew consent (opt-out) for one subaccount or, with scope tenant, for all."""

    scope: Scope
    keyword: str | None
    match: str | None
    policy: str | None
    channel: str
    method: Method
    actor: str
    purpose: str | None = None
    notice_version: str | None = None
    unresolved_subaccount: str | None = None
    """Set when the subaccount named by the sender could not be resolved; the scope is tenant."""
    provider_time: str | None = None
    """The provider's timestamp when it lay too far in the future and was replaced."""
    revoke_all: bool = False
    """True when the scope is tenant because the tenant has ``revoke_all`` on."""
    resolves: int | None = None
    """Position of the review item this opt-out resolves, if any."""
    flagged: str | None = None
    """Why a person should check this opt-out (it suppresses meanwhile): its idempotency key
    named another request, or its text reads as another action than the request's verb."""
    recorded_by: str | None = None
    """Who recorded it, set by the server: ``key:<id>`` of the API key, or ``cli:<user>``."""
    claimed_actor: str | None = None
    """Who the client said performed it: a claim, shown as such, never trusted."""
    destination: str | None = None
    """The number the person texted (the 8x8 message's ``destination``), when known."""
    reply: ReplyIntent | None = None
    """The reply this entry asks for (a confirmation or a HELP answer), decided at intake."""
    blacklist: bool = False
    """Push the number to 8x8's account blacklist (a tenant-wide opt-out of a tenant that syncs
    it), after the confirmation was sent or expired."""


class ConsentGranted(_Event, frozen=True, tag="consent.granted"):
    """The person gave (or restored) consent for one subaccount."""

    scope: Scope
    keyword: str | None
    match: str | None
    policy: str | None
    channel: str
    method: Method
    actor: str
    purpose: str | None = None
    notice_version: str | None = None
    recorded_by: str | None = None
    """Who recorded it, set by the server (see ``ConsentRevoked.recorded_by``)."""
    claimed_actor: str | None = None
    """Who the client said performed it: a claim, never trusted."""
    resolves: int | None = None
    """Position of the review item this opt-in resolves (an accepted imported opt-in)."""
    destination: str | None = None
    """The number the person texted (the 8x8 message's ``destination``), when known."""
    reply: ReplyIntent | None = None
    """The reply this entry asks for (a confirmation or a HELP answer), decided at intake."""


class HelpRequested(_Event, frozen=True, tag="help.requested"):
    """The person asked for help (HELP, AIDE, …); consent is unchanged."""

    keyword: str | None
    match: str | None
    policy: str | None
    channel: str
    method: Method
    actor: str
    recorded_by: str | None = None
    """Who recorded it, set by the server (see ``ConsentRevoked.recorded_by``)."""
    claimed_actor: str | None = None
    """Who the client said performed it: a claim, never trusted."""
    destination: str | None = None
    """The number the person texted (the 8x8 message's ``destination``), when known."""
    reply: ReplyIntent | None = None
    """The reply this entry asks for (a confirmation or a HELP answer), decided at intake."""


class ReviewFlagged(_Event, frozen=True, tag="review.flagged"):
    """A message that may be a revocation but is not clearly one; a person must look at it."""

    keyword: str | None
    match: str | None
    policy: str | None
    channel: str
    method: Method
    actor: str
    reason: str
    recorded_by: str | None = None
    """Who recorded it, set by the server (see ``ConsentRevoked.recorded_by``)."""
    claimed_actor: str | None = None
    """Who the client said performed it: a claim, never trusted."""
    withheld: Literal["opt_in"] | None = None
    """The action this entry would have recorded and holds for a person instead (an imported
    opt-in that would re-allow a number opted out through the ledger): the resolution
    ``accept`` records it, ``dismiss`` drops it."""
    notice_version: str | None = None
    """What the person was told, for a withheld opt-in (recorded with it when accepted)."""


class ReviewResolved(_Event, frozen=True, tag="review.resolved"):
    """A reviewer closed the review item at ``position`` (the action's own entries follow it)."""

    position: int
    action: ReviewAction
    note: str
    actor: str
    subaccount: str | None = None


class EntryRetracted(_Event, frozen=True, tag="entry.retracted"):
    """As known from this entry on, the entry at ``position`` has no effect at any valid time."""

    position: int
    reason: str
    actor: str


class SubaccountConfigured(_Event, frozen=True, tag="subaccount.configured"):
    """A subaccount's settings as of this entry (a full snapshot, not a delta)."""

    default_region: str | None
    mode: Mode
    unknown: Unknown
    keywords: KeywordChanges
    policy_version: int
    actor: str
    method: Method


class TenantConfigured(_Event, frozen=True, tag="tenant.configured"):
    """The tenant's settings as of this entry (a full snapshot)."""

    revoke_all: bool
    actor: str
    default_region: str | None = None
    """Region for national numbers of opt-outs whose subaccount is not resolved."""
    evidence_retention_days: int | None = None
    """Evidence of entries superseded for longer than this many days is erased (none: kept)."""
    retention_reason: str | None = None
    """Why a retention period under the minimum was accepted (recorded with it)."""


class EvidenceErased(_Event, frozen=True, tag="evidence.erased"):
    """The evidence of entries was erased (salt and all): a tombstone saying when (this entry's
    recorded time), why and by whom. The entries themselves, their hashes and the consent they
    record are unchanged. ``reason`` is part of the immutable log: a ticket reference, never
    personal data."""

    reason: str
    actor: str
    positions: tuple[int, ...] = ()
    """The entries whose evidence was erased now (a retention run names none: see
    ``erased``)."""
    quarantined: int = 0
    """Quarantined bodies erased with them (an erasure by number)."""
    erased: int = 0
    """How many entries' evidence a retention run erased."""
    retention_days: int | None = None
    """Set for a retention run: the tenant's ``evidence_retention_days`` it applied."""
    superseded_before: str | None = None
    """Set for a retention run: evidence of entries superseded before this time was erased."""


class RepliesConfigured(_Event, frozen=True, tag="replies.configured"):
    """A subaccount's replies through 8x8's SMS API (a full snapshot; every template ``None``:
    replies off). Templates were validated (projections.eightxeight.templates)."""

    opt_out: str | None
    help: str | None
    opt_in: str | None
    sender: str | None
    """The sender when the entry does not keep the number the person texted."""
    region: Region
    numbers: tuple[str, ...]
    """The virtual numbers this subaccount owns (E.164): an opt-out whose subaccount was not
    resolved is answered through the subaccount that owns the number texted."""
    actor: str


class WorkflowPushed(_Event, frozen=True, tag="8x8.workflow"):
    """An Automation Builder definition created or updated for a subaccount through 8x8's
    Automation API (the next push updates ``definition_id``)."""

    account: str
    definition_id: str
    channel: str
    mode: str
    url: str
    document_sha256: str
    created: bool
    actor: str


class BlacklistConfigured(_Event, frozen=True, tag="blacklist.configured"):
    """The tenant's sync of tenant-wide opt-outs to 8x8's account blacklist (a full snapshot)."""

    enabled: bool
    account: str | None
    region: Region
    actor: str


class ReplyAttempted(_Event, frozen=True, tag="reply.attempted"):
    """The dispatcher is about to call 8x8 for the reply that the entry at ``position`` asks
    for (``action`` ``blacklist``: its push to the account blacklist); ``attempt`` counts from
    1."""

    position: int
    attempt: int
    action: str = "reply"


class ReplySent(_Event, frozen=True, tag="reply.sent"):
    """8x8 took the reply (or blacklist push) for ``position``: its ``umid`` when it gave one;
    ``via`` ``receipt`` when a delivery receipt settled an uncertain one."""

    position: int
    umid: str | None = None
    via: str = "api"
    state: str | None = None
    action: str = "reply"
    settles: int | None = None
    """The ``reply.uncertain`` entry a delivery receipt settled (its review item closes)."""


class ReplyFailed(_Event, frozen=True, tag="reply.failed"):
    """8x8 refused the reply for ``position`` (its error ``code``) or reported it
    undeliverable; never retried."""

    position: int
    code: str
    message: str
    via: str = "api"
    action: str = "reply"
    settles: int | None = None
    """The ``reply.uncertain`` entry a delivery receipt settled (its review item closes)."""


class ReplyDeferred(_Event, frozen=True, tag="reply.deferred"):
    """Attempt ``attempt`` for ``position`` provably did not reach 8x8 (no connection, or
    429/503 with ``Retry-After``): another attempt may follow, not before ``retry_at``."""

    position: int
    attempt: int
    reason: str
    retry_at: str
    action: str = "reply"


class ReplyUncertain(_Event, frozen=True, tag="reply.uncertain"):
    """Whether 8x8 took the reply for ``position`` is unknown: never sent again; a delivery
    receipt settles it, or a person closes it in the review queue."""

    position: int
    reason: str
    action: str = "reply"


class ReplyExpired(_Event, frozen=True, tag="reply.expired"):
    """The reply for ``position`` was not sent: its deadline passed, or (``reason``) it was
    not due (a repeat opt-out found when it was to be sent)."""

    position: int
    reason: str = "the deadline passed"
    action: str = "reply"


Event = (
    ConsentRevoked
    | ConsentGranted
    | HelpRequested
    | ReviewFlagged
    | ReviewResolved
    | EntryRetracted
    | SubaccountConfigured
    | TenantConfigured
    | EvidenceErased
    | RepliesConfigured
    | WorkflowPushed
    | BlacklistConfigured
    | ReplyAttempted
    | ReplySent
    | ReplyFailed
    | ReplyDeferred
    | ReplyUncertain
    | ReplyExpired
)
"""Every event the log can hold."""

EVENT_TYPES: tuple[type[_Event], ...] = (
    ConsentRevoked,
    ConsentGranted,
    HelpRequested,
    ReviewFlagged,
    ReviewResolved,
    EntryRetracted,
    SubaccountConfigured,
    TenantConfigured,
    EvidenceErased,
    RepliesConfigured,
    WorkflowPushed,
    BlacklistConfigured,
    ReplyAttempted,
    ReplySent,
    ReplyFailed,
    ReplyDeferred,
    ReplyUncertain,
    ReplyExpired,
)


def event_type(event: Event) -> str:
    """The stable tag of ``event`` (what the entry's ``type`` field holds)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


RETRACTABLE_TYPES = frozenset(
    {"consent.revoked", "consent.granted", "help.requested", "review.flagged"}
)
"""Entry types a retraction may target; configuration, retractions and resolutions may not be."""
