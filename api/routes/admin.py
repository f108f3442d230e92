"""Administration, all as log entries: subaccount settings, tenant settings, retractions and
review resolutions.

Guarantees: every change is appended as entries of the key's tenant in one atomic append, with
the key as actor (``key:<id>``) and method ``admin``; a refused request writes nothing; a request
that would change nothing (same settings) writes nothing and says so (``changed: false``).
Another tenant's positions answer exactly like positions that do not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, PathParameter

from api import metrics
from api.auth import tenant_of
from api.keys import Principal
from api.problems import problem
from api.state import Services
from ledger.errors import NotFound
from ledger.events import ReviewAction, Unknown
from ledger.keywords import KeywordChanges, Mode
from ledger.store import Appended
from projections.config import SubaccountSettings
from projections.resolve import AlreadyResolved, resolve

_MAX_TEXT = 2000


def _counted(appended: list[Appended]) -> list[Appended]:
    for a in appended:
        if not a.duplicate:
            metrics.APPENDS.labels(a.stored.entry.type).inc()
    return appended


# -- subaccounts ---------------------------------------------------------------------------


class SubaccountUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """New settings; a field left out keeps its value. ``keywords`` replaces the subaccount's
    additions and removals as a whole (mandatory keywords can never be removed)."""

    default_region: str | None = None
    mode: Mode | None = None
    unknown: Unknown | None = None
    keywords: KeywordChanges | None = None


class SubaccountView(msgspec.Struct, frozen=True, kw_only=True):
    """A subaccount's current settings, its policy name and its effective keyword lists."""

    subaccount: str
    default_region: str | None
    mode: Mode
    unknown: Unknown
    keywords: KeywordChanges
    policy: str
    policy_version: int
    effective_keywords: dict[str, list[str]]
    position: int
    configured_at: str


class SubaccountUpdated(SubaccountView, frozen=True, kw_only=True):
    """The settings after a PUT, and whether it appended a new configuration entry."""

    changed: bool


class SubaccountList(msgspec.Struct, frozen=True):
    """Every known subaccount of the tenant, by id."""

    subaccounts: list[SubaccountView]


def subaccount_view(s: SubaccountSettings) -> SubaccountView:
    """Shape settings for output."""
    policy = s.policy
    return SubaccountView(
        subaccount=s.subaccount,
        default_region=s.default_region,
        mode=s.mode,
        unknown=s.unknown,
        keywords=s.keywords,
        policy=policy.name,
        policy_version=s.policy_version,
        effective_keywords={a: list(kws) for a, kws in policy.keywords().items()},
        position=s.position,
        configured_at=s.occurred_at,
    )


_SUBACCOUNT_EXAMPLE = {
    "subaccount": "ACME_MKT",
    "default_region": "SG",
    "mode": "standard",
    "unknown": "allow",
    "keywords": {"add": {"opt_out": ["UNSUB"]}, "remove": {"opt_out": ["BAJA"]}},
    "policy": "ACME_MKT@2",
    "policy_version": 2,
    "effective_keywords": {
        "opt_out": [
            "STOP",
            "STOPALL",
            "STOP ALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "OPT OUT",
            "ARRET",
            "ARRETE",
            "ALTO",
            "PARAR",
            "CANCELAR",
            "UNSUB",
        ],
        "opt_in": ["START", "UNSTOP", "YES", "SUBSCRIBE"],
        "help": ["HELP", "INFO", "AIDE", "AYUDA"],
    },
    "position": 12,
    "configured_at": "2026-03-01T08:00:00.000Z",
}


@put(
    "/v1/subaccounts/{subaccount_id:str}",
    opt={"scope": "admin"},
    sync_to_thread=True,
    status_code=200,
    tags=["admin"],
    summary="Register or configure a subaccount",
    description="Appends a `subaccount.configured` entry. Fields left out keep their value; "
    "`keywords` replaces the subaccount's additions and removals as a whole. Changing the mode "
    "or the keywords makes a new policy version. Removing a mandatory keyword (STOP, START, "
    "HELP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE, ARRET, AIDE) is refused (422).",
    responses={
        200: ResponseSpec(
            data_container=SubaccountUpdated,
            description="The settings now in force",
            examples=[
                Example(
                    summary="Region, one added and one removed keyword",
                    value={**_SUBACCOUNT_EXAMPLE, "changed": True},
                )
            ],
        )
    },
)
def put_subaccount(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    subaccount_id: Annotated[str, PathParameter(description="The subaccount id")],
    data: Annotated[
        SubaccountUpdate,
        Body(
            examples=[
                Example(
                    summary="Singapore numbers, one more opt-out keyword, one Spanish one removed",
                    value={
                        "default_region": "SG",
                        "mode": "standard",
                        "unknown": "allow",
                        "keywords": {
                            "add": {"opt_out": ["UNSUB"]},
                            "remove": {"opt_out": ["BAJA"]},
                        },
                    },
                )
            ]
        ),
    ],
) -> SubaccountUpdated:
    """Append the subaccount's new settings (nothing if they are unchanged)."""
    principal = request.user
    tenant = tenant_of(principal)
    ledger = services.ledger
    appended = ledger.update_subaccount(
        tenant,
        subaccount_id,
        actor=principal.actor,
        method="admin",
        default_region=data.default_region,
        mode=data.mode,
        unknown=data.unknown,
        keywords=data.keywords,
    )
    changed = appended is not None
    if appended is not None:
        _counted([appended])
    now = ledger.settings(tenant, subaccount_id)
    assert now is not None
    return SubaccountUpdated(**msgspec.structs.asdict(subaccount_view(now)), changed=changed)


@get(
    "/v1/subaccounts",
    opt={"scopes": ("admin", "audit")},
    sync_to_thread=True,
    tags=["admin"],
    summary="Every known subaccount with its settings and effective keyword lists",
    description="Needs the `admin` or the `audit` scope.",
    responses={
        200: ResponseSpec(
            data_container=SubaccountList,
            description="Subaccounts by id",
            examples=[
                Example(summary="One subaccount", value={"subaccounts": [_SUBACCOUNT_EXAMPLE]})
            ],
        )
    },
)
def list_subaccounts(
    request: Request[Principal, Any, Any], services: NamedDependency[Services]
) -> SubaccountList:
    """The tenant's subaccounts (admin or audit keys)."""
    principal = request.user
    tenant = tenant_of(principal)
    if not {"admin", "audit"} & principal.scopes:
        raise PermissionDeniedException(detail="this key lacks the 'admin' or 'audit' scope")
    return SubaccountList([subaccount_view(s) for s in services.ledger.subaccounts(tenant)])


# -- tenant --------------------------------------------------------------------------------


class TenantUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tenant settings: ``revoke_all`` makes every later opt-out apply to every subaccount;
    ``default_region`` (ISO 3166 alpha-2, e.g. ``SG``) reads national numbers of opt-outs whose
    subaccount is not resolved (left out: unchanged)."""

    revoke_all: bool
    default_region: str | None = None
    evidence_retention_days: Annotated[int, msgspec.Meta(ge=0, le=36500)] | None = None
    """Erase evidence of entries superseded longer ago than this (0: keep for ever; left out:
    unchanged). Under 1,461 days (4 years) only with ``retention_below_minimum_reason``."""
    retention_below_minimum_reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class TenantView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The tenant's settings and the entry that set them (``None``: never configured);
    ``default_region`` is shown once set."""

    tenant: str
    revoke_all: bool
    position: int | None
    changed: bool
    default_region: str | None = None
    evidence_retention_days: int | None = None
    retention_reason: str | None = None


@put(
    "/v1/tenant",
    opt={"scope": "admin"},
    sync_to_thread=True,
    status_code=200,
    tags=["admin"],
    summary="Tenant settings (revoke_all)",
    description="With `revoke_all` on, every opt-out received from then on applies to every "
    "subaccount of the tenant (FCC revoke-all, from 31 January 2027). Earlier entries keep the "
    "scope they were recorded with. Appends a `tenant.configured` entry.",
    responses={
        200: ResponseSpec(
            data_container=TenantView,
            description="The tenant's settings",
            examples=[
                Example(
                    summary="revoke_all turned on",
                    value={
                        "tenant": "default",
                        "revoke_all": True,
                        "position": 14,
                        "changed": True,
                    },
                )
            ],
        )
    },
)
def put_tenant(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[
        TenantUpdate,
        Body(
            examples=[
                Example(summary="Every opt-out applies tenant-wide", value={"revoke_all": True})
            ]
        ),
    ],
) -> TenantView:
    """Append the tenant's settings (nothing if unchanged)."""
    principal = request.user
    tenant = tenant_of(principal)
    update = services.ledger.update_tenant(
        tenant,
        actor=principal.actor,
        revoke_all=data.revoke_all,
        default_region=data.default_region,
        evidence_retention_days=data.evidence_retention_days,
        below_minimum_reason=data.retention_below_minimum_reason,
    )
    if update.appended is not None:
        _counted([update.appended])
    return TenantView(
        tenant=tenant,
        revoke_all=update.revoke_all,
        position=update.appended.position if update.appended else None,
        changed=update.appended is not None,
        default_region=update.default_region,
        evidence_retention_days=update.evidence_retention_days,
        retention_reason=update.retention_reason,
    )


# -- retractions ---------------------------------------------------------------------------


class RetractionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Retract the entry at ``position``: as known from now on it has no effect at any time."""

    position: Annotated[int, msgspec.Meta(ge=1)]
    reason: Annotated[str, msgspec.Meta(max_length=_MAX_TEXT)]


class RetractionView(msgspec.Struct, frozen=True, kw_only=True):
    """The appended retraction."""

    position: int
    retracts: int
    retracted_type: str
    reason: str
    recorded_at: str


@post(
    "/v1/retractions",
    opt={"scope": "admin"},
    sync_to_thread=True,
    status_code=201,
    tags=["admin"],
    summary="Retract an entry (a correction never edits the past)",
    description="Appends an `entry.retracted`. As known from then on, the retracted entry has no "
    "effect at any valid time; point-in-time answers with an earlier `known_at` still see it. "
    "Opt-outs, opt-ins, help requests and review flags can be retracted, once each; a position "
    "that does not exist or belongs to another tenant is refused alike (422).",
    responses={
        201: ResponseSpec(
            data_container=RetractionView,
            description="The retraction",
            examples=[
                Example(
                    summary="A mistaken opt-out retracted",
                    value={
                        "position": 15,
                        "retracts": 9,
                        "retracted_type": "consent.revoked",
                        "reason": "duplicate import of a test number",
                        "recorded_at": "2026-03-05T11:00:00.000Z",
                    },
                )
            ],
        )
    },
)
def post_retraction(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[
        RetractionRequest,
        Body(
            examples=[
                Example(
                    summary="Retract position 9",
                    value={"position": 9, "reason": "duplicate import of a test number"},
                )
            ]
        ),
    ],
) -> RetractionView:
    """Append a retraction of one of the tenant's entries."""
    principal = request.user
    tenant = tenant_of(principal)
    ledger = services.ledger
    appended = ledger.retract(
        tenant, data.position, reason=data.reason.strip(), actor=principal.actor
    )
    _counted([appended])
    target = ledger.store.read_positions([data.position])[0].entry
    entry = appended.stored.entry
    return RetractionView(
        position=appended.position,
        retracts=data.position,
        retracted_type=target.type,
        reason=data.reason.strip(),
        recorded_at=entry.recorded_at,
    )


# -- review resolution ---------------------------------------------------------------------


class ResolveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a reviewer resolves an item; ``subaccount`` names where an opt-out applies."""

    action: ReviewAction
    note: Annotated[str, msgspec.Meta(max_length=_MAX_TEXT)]
    subaccount: str | None = None
    narrow: Annotated[
        bool,
        msgspec.Meta(
            description="assign only: also retract the tenant-wide opt-out, in the same atomic "
            "step, so that it applies to the assigned subaccount alone. Refused (422) for an "
            "opt-out that is tenant-wide by its keyword (STOPALL) or under revoke_all."
        ),
    ] = False


class ResolutionView(msgspec.Struct, frozen=True, kw_only=True):
    """The entries a resolution appended."""

    position: int
    """The review item's position."""
    action: ReviewAction
    subaccount: str | None
    opt_out_position: int | None
    resolution_position: int
    retraction_position: int | None
    """The retraction of the tenant-wide opt-out (``narrow`` only)."""
    notes: list[str]
    opt_in_position: int | None = None
    """The opt-in an ``accept`` recorded (an imported opt-in held for review)."""


@post(
    "/v1/review/{position:int}/resolve",
    opt={"scope": "admin"},
    sync_to_thread=True,
    status_code=200,
    tags=["review"],
    summary="Resolve a review item",
    description="`dismiss`: consent unchanged. `opt_out`: a `consent.revoked` on the item's "
    "subaccount (or `subaccount`), valid from when the person wrote. `assign` (an opt-out "
    "whose subaccount was unresolved): a `consent.revoked` on `subaccount`. Each appends a "
    "`review.resolved`, all in one atomic append. The tenant-wide opt-out of an unresolved "
    "item stays in force for every subaccount unless the resolution says otherwise "
    "explicitly: `assign` with `narrow: true` also appends the `entry.retracted` of the "
    "tenant-wide opt-out in the same atomic append (`retraction_position`), so from then on "
    "it applies to `subaccount` alone. Only an opt-out that was tenant-wide solely because "
    "its subaccount was unresolved can be narrowed: one tenant-wide by its keyword (STOPALL, "
    "STOP ALL) or under the tenant's `revoke_all` is refused (422), as is `narrow` with any "
    "other action. `narrow` defaults to false. `accept` (an imported opt-in held for review "
    "because it would re-allow a number opted out through the ledger): the `consent.granted` "
    "it held, valid from the row's own date (`opt_in_position`). An item already resolved: 409.",
    responses={
        200: ResponseSpec(
            data_container=ResolutionView,
            description="What was appended",
            examples=[
                Example(
                    summary="An unresolved opt-out assigned to ACME_MKT",
                    value={
                        "position": 7,
                        "action": "assign",
                        "subaccount": "ACME_MKT",
                        "opt_out_position": 21,
                        "resolution_position": 22,
                        "retraction_position": None,
                        "notes": [
                            "opted out of subaccount 'ACME_MKT' from 2026-03-02T09:15:27.431Z",
                            "the tenant-wide opt-out at position 7 stays in force for every "
                            "subaccount (when in doubt, suppress); to narrow it, retract it: POST "
                            '/v1/retractions {"position": 7, "reason": "..."}',
                        ],
                    },
                )
            ],
        )
    },
)
def resolve_review(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    position: Annotated[int, PathParameter(description="The review item's log position")],
    data: Annotated[
        ResolveRequest,
        Body(
            examples=[
                Example(
                    summary="The STOP came through ACME_MKT's workflow",
                    value={
                        "action": "assign",
                        "subaccount": "ACME_MKT",
                        "note": "tutorial body in the ACME_MKT workflow; fixed the HTTP step",
                    },
                )
            ]
        ),
    ],
) -> ResolutionView:
    """Append the resolution of one open review item."""
    principal = request.user
    tenant = tenant_of(principal)
    if not 1 <= position < 2**63:  # beyond any log position: no such item
        raise NotFound(f"there is no open review item at position {position}")
    try:
        done = resolve(
            services.ledger,
            tenant,
            position,
            action=data.action,
            note=data.note,
            actor=principal.actor,
            subaccount=data.subaccount,
            narrow=data.narrow,
        )
    except AlreadyResolved as exc:
        raise problem(409, str(exc), kind="already-resolved") from exc
    done_entries = (done.opt_out, done.opt_in, done.resolved, done.retraction)
    _counted([a for a in done_entries if a is not None])
    return ResolutionView(
        position=position,
        action=done.action,
        subaccount=done.subaccount,
        opt_out_position=done.opt_out.position if done.opt_out else None,
        resolution_position=done.resolved.position,
        retraction_position=done.retraction.position if done.retraction else None,
        notes=list(done.notes),
        opt_in_position=done.opt_in.position if done.opt_in else None,
    )


ROUTES = [put_subaccount, list_subaccounts, put_tenant, post_retraction, resolve_review]
