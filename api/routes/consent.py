"""'May I send?': one number (``GET /v1/consent/…``) or a whole list (``POST /v1/consent/check``).

Guarantees: an answer reflects exactly one log position (``log_position``); numbers are read by
docs/consent-rules.md §12 (``+``/``00`` international, bare digits national in the subaccount's
default region); an unknown subaccount is answered (tenant-wide entries still apply) with
``subaccount_known: false``; in a bulk check every input gets its own result, in input order, and
an input that is not a valid number is never ``allowed``. Nothing here writes to the log.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, PathParameter, QueryParameter

from api import metrics
from api.auth import tenant_of
from api.keys import Principal
from api.problems import problem
from api.state import Services, services_of
from api.subject import subject_of
from api.views import DecisionView, decision_view
from ledger.errors import InvalidNumber
from ledger.msisdn import to_e164_many
from ledger.timefmt import normalize_time
from projections.decisions import BulkStates, State
from projections.ids import valid_subaccount

TAGS = ["consent"]
SUBACCOUNT = PathParameter(description="The subaccount id (e.g. the 8x8 subAccountId)")
MSISDN = PathParameter(
    description="The number: E.164 with the '+' URL-encoded (%2B), 00-prefixed, or national "
    "digits read in the subaccount's default region"
)
_AT = QueryParameter(
    name="at",
    required=False,
    description="Valid time to decide at: RFC 3339 with an offset, or a bare date (00:00Z). "
    "Default: now.",
)
_KNOWN_AT = QueryParameter(
    name="known_at",
    required=False,
    description="Decide as the ledger knew it then: an RFC 3339 time, or a log position (at "
    "most 18 digits, no later than the newest entry: a later one is a 422). A time in the "
    "future is answered as known now, and `known_at_note` says so. Default: everything known "
    "now.",
)


def parse_at(text: str | None) -> str | None:
    """A valid time in canonical form (``None`` = now); 422 for a naive or malformed time."""
    return None if text is None else normalize_time(text)


_DECISION_EXAMPLE = {
    "allowed": False,
    "state": "opted_out",
    "msisdn": "+6581968289",
    "subaccount": "ACME_MKT",
    "subaccount_known": True,
    "reason": "opted out by STOP for this subaccount at 2026-03-02T09:15:27.431Z (position 2)",
    "decided_by": {
        "position": 2,
        "event_id": "0b6f3a52-52c4-4c5e-9d1e-2f1f3c4b5a69",
        "type": "consent.revoked",
        "occurred_at": "2026-03-02T09:15:27.431Z",
        "keyword": "STOP",
    },
    "at": "2026-03-03T00:00:00.000Z",
    "known_at": None,
    "log_position": 5,
    "known_at_note": None,
}


@get(
    "/v1/consent/{subaccount:str}/{msisdn:str}",
    opt={"scope": "check"},
    tags=TAGS,
    summary="May this subaccount send to this number?",
    description="The number in any accepted form: E.164 (URL-encode the '+' as %2B), 00-prefixed, "
    "or national digits read in the subaccount's default region. `at` and `known_at` give "
    "point-in-time answers (what was true at `at`, as known at `known_at`).",
    responses={
        200: ResponseSpec(
            data_container=DecisionView,
            description="The decision",
            examples=[Example(summary="Opted out by STOP", value=_DECISION_EXAMPLE)],
        )
    },
)
async def check_one(
    request: Request[Principal, Any, Any],
    subaccount: Annotated[str, SUBACCOUNT],
    msisdn: Annotated[str, MSISDN],
    at: Annotated[str | None, _AT] = None,
    known_at: Annotated[str | None, _KNOWN_AT] = None,
) -> DecisionView:
    """The decision for one number, now or at a point in time (on the read lane: one number
    is a few index lookups)."""
    services = services_of(request.app)
    return await services.read(_check_one, services, request.user, subaccount, msisdn, at, known_at)


def _check_one(
    services: Services,
    principal: Principal,
    subaccount: str,
    msisdn: str,
    at: str | None,
    known_at: str | None,
) -> DecisionView:
    ledger = services.ledger
    tenant, number = subject_of(principal, ledger, subaccount, msisdn)
    valid_at = parse_at(at)
    known = ledger.known_at(known_at)
    decision = ledger.decide(tenant, subaccount, number, at=valid_at, known_at=known.position)
    metrics.DECISIONS.labels("allowed" if decision.allowed else "suppressed").inc()
    return decision_view(decision, number, subaccount, known)


class CheckRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bulk check: many numbers, one subaccount, one valid time."""

    subaccount: str
    msisdns: list[str]
    at: str | None = None


class CheckResult(msgspec.Struct, frozen=True):
    """The answer for one input; an invalid input has ``error`` set and is never allowed."""

    input: str
    msisdn: str | None
    allowed: bool
    state: State | None
    error: str | None


class CheckCounts(msgspec.Struct, frozen=True):
    """How many inputs were allowed, suppressed (valid, not allowed) and invalid."""

    allowed: int
    suppressed: int
    invalid: int


class CheckResponse(msgspec.Struct, frozen=True, kw_only=True):
    """Bulk check results in input order, with counts and the log position they reflect."""

    results: list[CheckResult]
    counts: CheckCounts
    subaccount: str
    subaccount_known: bool
    at: str
    log_position: int


_CHECK_REQUEST = Example(
    summary="A campaign list",
    value={
        "subaccount": "ACME_MKT",
        "msisdns": ["+6581968289", "91234567", "not-a-number"],
    },
)
_CHECK_RESPONSE = Example(
    summary="One opted out, one allowed, one invalid",
    value={
        "results": [
            {
                "input": "+6581968289",
                "msisdn": "+6581968289",
                "allowed": False,
                "state": "opted_out",
                "error": None,
            },
            {
                "input": "91234567",
                "msisdn": "+6591234567",
                "allowed": True,
                "state": "unknown",
                "error": None,
            },
            {
                "input": "not-a-number",
                "msisdn": None,
                "allowed": False,
                "state": None,
                "error": "'not-a-number' is not a phone number: it contains letters",
            },
        ],
        "counts": {"allowed": 1, "suppressed": 1, "invalid": 1},
        "subaccount": "ACME_MKT",
        "subaccount_known": True,
        "at": "2026-03-03T00:00:00.000Z",
        "log_position": 5,
    },
)


@post(
    "/v1/consent/check",
    opt={"scope": "check"},
    sync_to_thread=True,
    status_code=200,
    tags=TAGS,
    summary="Bulk check: may this subaccount send to each of these numbers?",
    description="Up to 10,000 numbers per request (a body of at most 1 MiB). Results come back "
    "in input order; an input that is not a valid number gets its own `error` and "
    "`allowed: false`. One database query answers the whole list.",
    responses={
        200: ResponseSpec(
            data_container=CheckResponse,
            description="One result per input",
            examples=[_CHECK_RESPONSE],
        )
    },
)
def check_many(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[CheckRequest, Body(examples=[_CHECK_REQUEST])],
) -> CheckResponse:
    """Decisions for every number of a list, in one snapshot of the log."""
    tenant = tenant_of(request.user)
    ledger = services.ledger
    limit = services.settings.bulk_limit
    if len(data.msisdns) > limit:
        raise problem(
            422,
            f"at most {limit} numbers per request; this one has {len(data.msisdns)} "
            "(split the list)",
            kind="bulk-limit",
            extra={"limit": limit},
        )
    valid_subaccount(data.subaccount)
    at = parse_at(data.at) or ledger.now()
    settings = ledger.settings(tenant, data.subaccount)
    region = settings.default_region if settings else None
    numbers = to_e164_many(data.msisdns, region)
    valid = [n for n in numbers if type(n) is str]
    found, head = ledger.states_many(tenant, data.subaccount, valid, at=at)
    results, counts = _results(data.msisdns, numbers, found)
    metrics.DECISIONS.labels("allowed").inc(counts.allowed)
    metrics.DECISIONS.labels("suppressed").inc(counts.suppressed)
    return CheckResponse(
        results=results,
        counts=counts,
        subaccount=data.subaccount,
        subaccount_known=found.subaccount_known,
        at=at,
        log_position=head,
    )


def _results(
    raws: list[str], numbers: list[str | InvalidNumber], found: BulkStates
) -> tuple[list[CheckResult], CheckCounts]:
    """One result per input, in order; the per-item loop kept as small as possible."""
    states, unknown_allowed = found.states, found.unknown_allowed
    results: list[CheckResult] = []
    append = results.append
    allowed = invalid = 0
    for raw, number in zip(raws, numbers, strict=True):
        if type(number) is str:
            state = states.get(number, "unknown")
            ok = state == "opted_in" if state != "unknown" else unknown_allowed
            if ok:
                allowed += 1
            append(CheckResult(raw, number, ok, state, None))
        else:
            invalid += 1
            append(CheckResult(raw, None, False, None, str(number)))
    suppressed = len(raws) - allowed - invalid
    return results, CheckCounts(allowed, suppressed, invalid)


ROUTES = [check_one, check_many]
