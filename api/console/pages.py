"""The console's pages (GET): overview, number look-up, review queue, quarantine, subaccounts,
and the number's downloads.

Guarantees: every page reads through the application layer (``projections``) with the signed-in
key's tenant, exactly as the API routes do, so another tenant's numbers look as if they had no
record and another tenant's review items and subaccounts as if they did not exist (404); no
page writes to the log (the evidence bundle signs a checkpoint, as the API's does).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from litestar import MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from api.bundle_html import render_html
from api.console.drawing import TenantWide, daily_chart, timeline
from api.console.forms import settings_form
from api.console.session import PATH, ConsoleUser
from api.quarantine import listed
from api.routes.admin import subaccount_view
from api.routes.audit import AuditEntry, audit_entry, review_view, trail_csv
from api.routes.evidence import PAGE
from api.routes.log import signer_or_503
from api.state import Services
from api.subject import subject_of
from ledger.errors import InvalidInput, NotFound
from ledger.events import ConsentGranted, ConsentRevoked
from ledger.timefmt import format_time, normalize_time, parse_time
from projections import audit
from projections.evidence import build_bundle, encode_bundle
from projections.ids import valid_subaccount
from projections.ledger import ConsentLedger
from projections.lookup import NumberLookup, look_up, read_number

PAGE_SIZE = 25
OVERVIEW_DAYS = 30
AGES = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7),
        "30d": timedelta(days=30)}  # fmt: skip
"""The review queue's "older than" filter choices."""
KINDS = {
    "flagged": "may be a revocation (a person decides)",
    "unresolved": "opt-out whose subaccount was not resolved (applied tenant-wide meanwhile)",
    "check": "opt-out to check (recorded and suppressing)",
}

Req = Request[ConsoleUser, Any, Any]
Query = Annotated[str | None, QueryParameter(required=False)]


def page(request: Req, name: str, status: int = 200, **context: Any) -> Template:
    """The template ``name`` with what every page shows (tenant, key, navigation)."""
    user = request.user
    return Template(
        template_name=name,
        context={"user": user, "path": request.url.path, **context},
        status_code=status,
    )


# -- overview ------------------------------------------------------------------------------


@get("/", name="console-overview", sync_to_thread=True)
def overview(request: Req, services: NamedDependency[Services]) -> Template:
    """Opt-outs and opt-ins per day, the review backlog, the quarantine, the log, the latest
    checkpoint."""
    ledger = services.ledger
    tenant = request.user.tenant
    now = ledger.clock()
    first_day = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(
        days=OVERVIEW_DAYS - 1
    )
    view = ledger.read_model
    counts = view.consent_per_day(tenant, format_time(first_day))
    backlog = view.review_backlog(tenant)
    oldest = min((b.oldest_recorded_at for b in backlog), default=None)
    quarantine = view.quarantine_summary(tenant)
    return page(
        request,
        "overview.html.j2",
        chart=daily_chart(counts, first_day, OVERVIEW_DAYS),
        totals=(sum(c.opted_out for c in counts), sum(c.opted_in for c in counts)),
        backlog=backlog,
        backlog_total=sum(b.open for b in backlog),
        backlog_age=_age(now, oldest),
        quarantine=quarantine,
        quarantine_age=_age(now, quarantine.oldest_received_at),
        head=ledger.head(),
        checkpoint=ledger.latest_checkpoint(),
        kinds=KINDS,
    )


def _age(now: datetime, since: str | None) -> float | None:
    return None if since is None else (now - parse_time(since)).total_seconds()


# -- a number ------------------------------------------------------------------------------


@get("/number", name="console-number", sync_to_thread=True)
def number(
    request: Req,
    services: NamedDependency[Services],
    q: Query = None,
    subaccount: Query = None,
    at: Query = None,
    known_at: Query = None,
) -> Template:
    """Look a number up: decisions per subaccount, the timeline, the entries and evidence, as
    of a point in time."""
    form = {"q": q or "", "subaccount": subaccount or "", "at": at or ""}
    form["known_at"] = known_at or ""
    status, context = number_context(services.ledger, request.user.tenant, form)
    return page(request, "number.html.j2", status, **context)


def number_context(
    ledger: ConsentLedger, tenant: str, form: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """The number page's status and template context for the look-up ``form`` (``q``,
    ``subaccount``, ``at``, ``known_at``): what the page handler renders, and the benchmark
    times."""
    subaccounts = [s.subaccount for s in ledger.subaccounts(tenant)]
    base: dict[str, Any] = {"form": form, "subaccounts": subaccounts, "found": None}
    if not form["q"].strip():
        return 200, base
    try:
        msisdn = read_number(ledger, tenant, form["q"], form["subaccount"] or None)
        valid_at = normalize_time(form["at"]) if form["at"].strip() else None
        known = ledger.known_at(form["known_at"].strip() or None)
    except InvalidInput as exc:
        return 422, {**base, "error": str(exc)}
    found = look_up(ledger, tenant, msisdn, at=valid_at, known_at=known.position)
    return 200, {
        **base,
        "found": found,
        "entries": [audit_entry(s, found.evidence) for s in found.entries],
        "drawing": timeline(found.rows, _tenant_wide(found), found.at),
        "known": known,
    }


def _tenant_wide(found: NumberLookup) -> list[TenantWide]:
    out = []
    for stored in found.entries:
        entry = stored.entry
        event = entry.event
        if isinstance(event, ConsentRevoked | ConsentGranted) and event.scope == "tenant":
            what = "opt-out" if isinstance(event, ConsentRevoked) else "opt-in"
            keyword = f" ({event.keyword})" if event.keyword else ""
            label = (
                f"tenant-wide {what}{keyword} for all subaccounts at {entry.occurred_at}, "
                f"entry {stored.position}"
            )
            out.append(TenantWide(stored.position, entry.occurred_at, label))
    return out


@get("/number/evidence", name="console-evidence", sync_to_thread=True)
def evidence(
    request: Req,
    services: NamedDependency[Services],
    msisdn: Annotated[str, QueryParameter()],
    subaccount: Annotated[str, QueryParameter()],
    fmt: Annotated[Literal["json", "html"], QueryParameter(name="format")] = "json",
) -> Response[Any]:
    """The number's evidence bundle for one subaccount (the API's), as a JSON file to verify
    offline or as the printable page."""
    ledger = services.ledger
    tenant, number = subject_of(request.user.principal, ledger, subaccount, msisdn)
    signer = signer_or_503(services, "evidence")
    bundle = build_bundle(ledger, signer, services.settings.origin, tenant, subaccount, number)
    if fmt == "html":
        return Response(render_html(bundle), media_type=MediaType.HTML, headers=PAGE)
    name = f"evidence-{subaccount}-{number.lstrip('+')}.json"
    return Response(
        encode_bundle(bundle),
        media_type=MediaType.JSON,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@get("/number/audit.csv", name="console-audit-csv", sync_to_thread=True)
def audit_csv(
    request: Req,
    services: NamedDependency[Services],
    msisdn: Annotated[str, QueryParameter()],
    subaccount: Annotated[str, QueryParameter()],
) -> Response[str]:
    """The number's audit trail for one subaccount as CSV (the API's)."""
    ledger = services.ledger
    tenant, number = subject_of(request.user.principal, ledger, subaccount, msisdn)
    found = audit.trail(ledger, tenant, subaccount, number)
    entries: list[AuditEntry] = [audit_entry(s, found.evidence) for s in found.entries]
    name = f"audit-{subaccount}-{number.lstrip('+')}.csv"
    return Response(
        trail_csv(entries),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- review queue ----------------------------------------------------------------------------


@get("/review", name="console-review", sync_to_thread=True)
def review(
    request: Req,
    services: NamedDependency[Services],
    kind: Query = None,
    subaccount: Query = None,
    older_than: Query = None,
    after: Annotated[int, QueryParameter(ge=0, le=2**63 - 1)] = 0,
    resolved: Annotated[int | None, QueryParameter(required=False, ge=0)] = None,
) -> Template:
    """One page of open review items, oldest first, filtered."""
    ledger = services.ledger
    tenant = request.user.tenant
    now = ledger.clock()
    kind = kind if kind in KINDS else None
    subaccount = (subaccount or "").strip() or None
    if subaccount is not None:
        valid_subaccount(subaccount)
    before = format_time(now - AGES[older_than]) if older_than in AGES else None
    items = ledger.review_queue(
        tenant, after=after, limit=PAGE_SIZE + 1, kind=kind, subaccount=subaccount,
        recorded_before=before,
    )  # fmt: skip
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    positions = [i.position for i in items]
    stored = {s.position: s for s in audit.entries_at(ledger, tenant, positions)}
    evidence_rows = audit.evidence_of(ledger, positions)
    views = [review_view(i, stored.get(i.position), evidence_rows, now) for i in items]
    filters = {"kind": kind or "", "subaccount": subaccount or "", "older_than": older_than or ""}
    return page(
        request,
        "review.html.j2",
        items=views,
        next_after=items[-1].position if more else None,
        filters=filters,
        kinds=KINDS,
        ages=AGES,
        resolved=resolved,
        subaccounts=[s.subaccount for s in ledger.subaccounts(tenant)],
    )


ACTION_WORDS = {
    "opt_out": "Opt out",
    "dismiss": "Dismiss",
    "assign": "Assign to a subaccount",
}


@get("/review/{position:int}", name="console-review-item", sync_to_thread=True)
def review_item(
    request: Req,
    services: NamedDependency[Services],
    position: Annotated[int, PathParameter()],
    action: Query = None,
) -> Template:
    """The confirmation step of resolving one review item."""
    ledger = services.ledger
    tenant = request.user.tenant
    if not 1 <= position < 2**63:
        raise NotFound(f"there is no review item at position {position}")
    item = ledger.review_item(tenant, position)
    stored = {s.position: s for s in audit.entries_at(ledger, tenant, [position])}
    shown = review_view(item, stored.get(position), audit.evidence_of(ledger, [position]),
                        ledger.clock())  # fmt: skip
    chosen = action if action in shown.actions else None
    return page(
        request,
        "review_item.html.j2",
        item=shown,
        closed=item.closed_by,
        closed_how=item.closed_how,
        action=chosen,
        action_words=ACTION_WORDS,
        kinds=KINDS,
        subaccounts=[s.subaccount for s in ledger.subaccounts(tenant)],
        form={"note": "", "subaccount": "", "narrow": False},
    )


# -- quarantine ----------------------------------------------------------------------------


@get("/quarantine", name="console-quarantine", sync_to_thread=True)
def quarantine(
    request: Req,
    services: NamedDependency[Services],
    after: Annotated[int, QueryParameter(ge=0, le=2**63 - 1)] = 0,
) -> Template:
    """One page of quarantined bodies, oldest first."""
    ledger = services.ledger
    tenant = request.user.tenant
    bodies = listed(ledger.store, tenant, after_id=after, limit=PAGE_SIZE + 1)
    more = len(bodies) > PAGE_SIZE
    bodies = bodies[:PAGE_SIZE]
    summary = ledger.read_model.quarantine_summary(tenant)
    now = ledger.clock()
    return page(
        request,
        "quarantine.html.j2",
        bodies=[(b, _age(now, b.received_at)) for b in bodies],
        next_after=bodies[-1].id if more else None,
        summary=summary,
        oldest_age=_age(now, summary.oldest_received_at),
    )


# -- subaccounts ---------------------------------------------------------------------------


@get("/subaccounts", name="console-subaccounts", sync_to_thread=True)
def subaccounts(request: Req, services: NamedDependency[Services]) -> Template:
    """Every subaccount of the tenant with its settings and effective keyword lists."""
    found = services.ledger.subaccounts(request.user.tenant)
    return page(request, "subaccounts.html.j2", subaccounts=[subaccount_view(s) for s in found])


@get("/subaccount", name="console-subaccount-open", sync_to_thread=True)
def open_subaccount(request: Req, id: Annotated[str, QueryParameter()]) -> Redirect:
    """The register form's target: to the subaccount's page (its id checked first)."""
    valid_subaccount(id.strip())
    return Redirect(path=f"{PATH}/subaccounts/{quote(id.strip(), safe='')}", status_code=303)


@get("/subaccounts/{subaccount_id:str}", name="console-subaccount", sync_to_thread=True)
def subaccount(
    request: Req,
    services: NamedDependency[Services],
    subaccount_id: Annotated[str, PathParameter()],
    saved: Annotated[bool, QueryParameter(required=False)] = False,
) -> Template:
    """One subaccount: its settings and (with ``admin``) the form that changes them."""
    valid_subaccount(subaccount_id)
    settings = services.ledger.settings(request.user.tenant, subaccount_id)
    if settings is None and not request.user.can_admin:
        raise NotFound(f"there is no subaccount {subaccount_id!r}")
    return page(
        request,
        "subaccount.html.j2",
        sub=subaccount_view(settings) if settings else None,
        subaccount_id=subaccount_id,
        form=settings_form(settings),
        saved=saved,
    )


ROUTES = [
    overview,
    number,
    evidence,
    audit_csv,
    review,
    review_item,
    quarantine,
    subaccounts,
    open_subaccount,
    subaccount,
]
