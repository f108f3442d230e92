"""Intake endpoints: the 8x8 webhook, opt-outs and opt-ins from any system, the quarantine.

Guarantees:
- ``POST /v1/webhooks/8x8`` accepts any body and answers 200 unless the store cannot write
  (503, so 8x8 retries): a body it cannot understand is quarantined, an event that is not an
  inbound message is ignored, a repeat of a umid returns the original answer and writes nothing;
- ``POST /v1/opt-outs`` and ``/v1/opt-ins`` answer 201 when an entry was appended and 200 with
  ``duplicate: true`` for a repeat of the same request; an idempotency key (or umid) reused for a
  different request is 409; refused input (422, 400, 413) leaves the log unchanged;
- every request's raw body, text, remote address, request id and key id are kept as evidence;
- webhooks that arrive together are recorded together (``record_webhooks``, on one intake thread
  per worker): each answered exactly as if it had come alone, all appended in one commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIType, Operation, RequestBody
from litestar.openapi.spec import Schema as OpenAPISchema
from litestar.params import Body, QueryParameter

from api import metrics, payloads, quarantine
from api.auth import tenant_of
from api.keys import Principal
from api.payloads import MAX_ID_CHARS, MAX_TEXT_CHARS, Ignored, Unreadable
from api.quarantine import QuarantinedBody, Received
from api.state import Services, services_of
from ledger.entries import Entry, Evidence
from ledger.errors import Conflict, InvalidInput
from ledger.keywords import MAX_KEYWORD_LENGTH
from ledger.timefmt import normalize_time
from projections.intake import (
    SUBJECT,
    IntakeRequest,
    IntakeResult,
    Prepared,
    Verb,
    prepare,
    record,
    record_each,
)

T = TypeVar("T")
MAX_FIELD_CHARS = 256
"""Longest actor, purpose or notice version accepted, in characters."""

_EXPECTED_TYPE = {"opt_out": "consent.revoked", "opt_in": "consent.granted"}
MAX_ID = 2**63 - 1
"""The largest id SQLite stores."""
NESTED_TOO_DEEPLY = "the body is not valid JSON: it is nested too deeply"


# -- schemas -----------------------------------------------------------------------------------
class WebhookAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the webhook did with an inbound message."""

    outcome: Literal["opted_out", "opted_in", "help", "review", "none"]
    position: int | None
    duplicate: bool
    msisdn: str
    subaccount: str | None
    keyword: str | None
    match: str | None
    policy: str | None
    notes: list[str]


class WebhookSkipped(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook body that recorded nothing: not an inbound message, or not understood."""

    outcome: Literal["ignored", "quarantined"]
    position: None
    reason: str


class ConsentRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An opt-out or opt-in relayed by an Automation Builder HTTP step or any other system."""

    msisdn: str
    subaccount: str
    text: str | None = None
    keyword: str | None = None
    umid: str | None = None
    idempotency_key: str | None = None
    occurred_at: str | None = None
    method: Literal["automation-http", "api", "import"] = "automation-http"
    actor: str = SUBJECT
    purpose: str | None = None
    notice_version: str | None = None


class ConsentAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The entry an opt-out or opt-in request produced (or the original one, for a repeat)."""

    outcome: Literal["opted_out", "opted_in"]
    position: int
    duplicate: bool
    msisdn: str
    subaccount: str | None
    scope: Literal["subaccount", "tenant"]
    unresolved: bool
    time_replaced: bool
    keyword: str | None
    match: str | None
    policy: str | None
    notes: list[str]


class QuarantineList(msgspec.Struct, frozen=True, kw_only=True):
    """One page of quarantined bodies; pass ``next_after_id`` as ``after_id`` for the next."""

    items: list[QuarantinedBody]
    next_after_id: int | None


# -- examples ----------------------------------------------------------------------------------
_SMS_STOP = {
    "namespace": "SMS",
    "eventType": "inbound_message_received",
    "description": "SMS inbound message",
    "payload": {
        "umid": "3b1f6c2e-7d4a-5e8b-9c10-2f3a4b5c6d7e",
        "subAccountId": "ACME_MKT",
        "timestamp": "2026-03-02T09:15:27.431Z",
        "source": "+6581968289",
        "destination": "+6590001111",
        "body": "STOP",
        "encoding": "GSM7",
        "smsCount": 1,
    },
}
_WEBHOOK_ANSWER = {
    "outcome": "opted_out",
    "position": 2,
    "duplicate": False,
    "msisdn": "+6581968289",
    "subaccount": "ACME_MKT",
    "keyword": "STOP",
    "match": "exact",
    "policy": "default@1",
    "notes": ["subaccount 'ACME_MKT' was new and has been registered with default settings"],
}
_OPT_OUT_REQUEST = {
    "msisdn": "+6581968289",
    "subaccount": "ACME_MKT",
    "text": "STOP",
    "umid": "3b1f6c2e-7d4a-5e8b-9c10-2f3a4b5c6d7e",
    "occurred_at": "2026-03-02T09:15:27.431Z",
}
_OPT_OUT_ANSWER = {
    "outcome": "opted_out",
    "position": 3,
    "duplicate": False,
    "msisdn": "+6581968289",
    "subaccount": "ACME_MKT",
    "scope": "subaccount",
    "unresolved": False,
    "time_replaced": False,
    "keyword": "STOP",
    "match": "exact",
    "policy": "default@1",
    "notes": [],
}
_OPT_IN_REQUEST = {
    "msisdn": "+6581968289",
    "subaccount": "ACME_MKT",
    "text": "START",
    "idempotency_key": "crm-4711",
    "occurred_at": "2026-04-11T18:02:05.000Z",
    "purpose": "marketing",
    "notice_version": "2026-01",
}
_OPT_IN_ANSWER = {
    **_OPT_OUT_ANSWER,
    "outcome": "opted_in",
    "position": 4,
    "keyword": "START",
}
_QUARANTINE_ANSWER = {
    "items": [
        {
            "id": 1,
            "received_at": "2026-03-02T09:15:28.102Z",
            "reason": "the body is not valid JSON: Input data was truncated",
            "content_type": "application/json",
            "body": '{"namespace": "SMS", "payl',
            "body_base64": "eyJuYW1lc3BhY2UiOiAiU01TIiwgInBheWw=",
            "remote_addr": "203.0.113.7",
            "request_id": "8f14e45fceea167a5a36dedd4bea2543",
        }
    ],
    "next_after_id": None,
}


@dataclass
class _WebhookOperation(Operation):
    """The webhook reads its raw body itself; this documents it with an example."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="An 8x8 inbound-SMS or Messaging Apps webhook body (any body is accepted;"
            " one that cannot be understood is quarantined).",
            content={
                "application/json": OpenAPIMediaType(
                    schema=OpenAPISchema(type=OpenAPIType.OBJECT),
                    examples={
                        "inbound-sms-stop": Example(summary="Inbound SMS: STOP", value=_SMS_STOP)
                    },
                )
            },
        )


def _example(summary: str, value: Any) -> list[Example]:
    return [Example(summary=summary, value=value)]


# -- shared request plumbing -------------------------------------------------------------------
def _received(request: Request[Any, Any, Any], services: Services) -> Received:
    client = request.client
    return Received(
        received_at=services.ledger.now(),
        content_type=request.headers.get("content-type"),
        remote_addr=client.host if client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def _evidence(
    raw: bytes, text: str | None, received: Received, key_id: str, profile_name: str | None = None
) -> Evidence:
    return Evidence(
        raw_body=raw.decode("utf-8", errors="replace"),
        text=text,
        profile_name=profile_name,
        remote_addr=received.remote_addr,
        request_id=received.request_id,
        content_type=received.content_type,
        key_id=key_id,
    )


def _words(result: IntakeResult) -> tuple[str | None, str | None, str | None]:
    """Keyword, match and policy: the stored entry's (a repeat answers the original's)."""
    if result.entry is not None:
        event = result.entry.event
        return (
            getattr(event, "keyword", None),
            getattr(event, "match", None),
            getattr(event, "policy", None),
        )
    found = result.classification
    return (found.keyword, found.match, found.policy) if found else (None, None, None)


def _count_appends(result: IntakeResult, registered: bool) -> None:
    if result.entry is None or result.duplicate:
        return
    metrics.APPENDS.labels(result.entry.type).inc()
    if registered:
        metrics.APPENDS.labels("subaccount.configured").inc()


# -- the 8x8 webhook ---------------------------------------------------------------------------
class Hook(msgspec.Struct, frozen=True):
    """One webhook request as received: who sent it, the raw body, where it came from."""

    principal: Principal
    raw: bytes
    received: Received


WebhookOutcome = WebhookAnswer | WebhookSkipped


def record_webhooks(services: Services, hooks: list[Hook]) -> list[WebhookOutcome | Exception]:
    """A batch of webhook bodies, each answered as if alone: each is read and classified on its
    own (quarantined or ignored on its own), then every message to store is appended in one
    group commit, each succeeding or failing alone; an error is in its request's place."""
    steps = [_step(services, hook) for hook in hooks]
    pending = [i for i, step in enumerate(steps) if isinstance(step, Prepared)]
    appended = record_each(services.ledger, [cast(Prepared, steps[i]) for i in pending])
    for i, outcome in zip(pending, appended, strict=True):
        steps[i] = _settled(services, hooks[i], outcome)
    return cast(list[WebhookOutcome | Exception], steps)


def _step(services: Services, hook: Hook) -> WebhookOutcome | Prepared | Exception:
    try:
        return _prepare_webhook(services, hook)
    except Exception as exc:  # its request's answer (a 403, a 503 …)
        return exc


def _settled(
    services: Services, hook: Hook, outcome: IntakeResult | Exception
) -> WebhookOutcome | Exception:
    """A prepared webhook's answer once its append is done (refused input is quarantined)."""
    try:
        if isinstance(outcome, InvalidInput):
            return _quarantined(services, hook, str(outcome))
        return outcome if isinstance(outcome, Exception) else _webhook_answer(outcome)
    except Exception as exc:  # the quarantine could not be written: this request's answer
        return exc


def _prepare_webhook(services: Services, hook: Hook) -> WebhookOutcome | Prepared:
    """What to append for one body, or its final answer (quarantined, ignored, nothing to
    store)."""
    tenant = tenant_of(hook.principal)
    try:
        message = payloads.read_webhook(hook.raw)
    except Unreadable as exc:
        return _quarantined(services, hook, str(exc))
    except RecursionError:  # the JSON decoder gives up on very deep nesting
        return _quarantined(services, hook, NESTED_TOO_DEEPLY)
    if isinstance(message, Ignored):
        metrics.WEBHOOK_OUTCOMES.labels("ignored").inc()
        return WebhookSkipped(outcome="ignored", position=None, reason=message.reason)
    request = IntakeRequest(
        tenant=tenant,
        subaccount=message.subaccount,
        msisdn=message.sender,
        method="8x8-webhook",
        text=message.text,
        occurred_at=message.timestamp,
        channel=message.channel,
        key=f"8x8:{message.umid}",
        evidence=_evidence(
            hook.raw, message.text, hook.received, hook.principal.key_id, message.profile_name
        ),
        register_subaccount=True,
    )
    try:
        prepared = prepare(services.ledger, request)
    except InvalidInput as exc:  # an invalid number, an opt-in dated in the future …
        return _quarantined(services, hook, str(exc))
    return prepared if isinstance(prepared, Prepared) else _webhook_answer(prepared)


def _webhook_answer(result: IntakeResult) -> WebhookAnswer:
    _count_appends(result, registered=result.registered)
    metrics.WEBHOOK_OUTCOMES.labels("duplicate" if result.duplicate else result.outcome).inc()
    keyword, match, policy = _words(result)
    return WebhookAnswer(
        outcome=result.outcome,
        position=result.position,
        duplicate=result.duplicate,
        msisdn=result.msisdn,
        subaccount=result.subaccount,
        keyword=keyword,
        match=match,
        policy=policy,
        notes=list(result.notes),
    )


def _quarantined(services: Services, hook: Hook, reason: str) -> WebhookSkipped:
    tenant = tenant_of(hook.principal)
    quarantine.keep(services.ledger.store, tenant, reason, hook.raw, hook.received)
    metrics.WEBHOOK_OUTCOMES.labels("quarantined").inc()
    return WebhookSkipped(outcome="quarantined", position=None, reason=reason)


@post(
    "/v1/webhooks/8x8",
    opt={"scope": "ingest", "problems": (401, 403, 413, 503)},
    tags=["intake"],
    status_code=200,
    summary="Receive an 8x8 inbound-SMS or Messaging Apps webhook",
    description=(
        "Point 8x8's inbound webhook here with a fixed `Authorization` header (Bearer, or Basic "
        "with the key as password). Every body is answered 200 — a 4XX would only make 8x8 "
        "retry: `ignored` for events that are not inbound messages, `quarantined` (with the "
        "reason; see `GET /v1/quarantine`) for bodies that cannot be understood. A repeat of a "
        "umid returns the original outcome with `duplicate: true`. 503 only when the store "
        "cannot write (8x8 retries later)."
    ),
    operation_class=_WebhookOperation,
    responses={
        200: ResponseSpec(
            WebhookAnswer | WebhookSkipped,
            generate_examples=False,
            description="What was recorded, or why nothing was",
            examples=_example("STOP from a new subaccount", _WEBHOOK_ANSWER),
        )
    },
)
async def webhook_8x8(request: Request[Principal, Any, Any]) -> WebhookAnswer | WebhookSkipped:
    """Record one 8x8 webhook body; see the module guarantees."""
    services = services_of(request.app)
    raw = await request.body()
    received = _received(request, services)
    return await services.intake(Hook(request.user, raw, received))


# -- opt-outs and opt-ins ----------------------------------------------------------------------
def _check_request(data: ConsentRequest) -> None:
    """Refuse (422) fields a person must fix; the ledger checks the number and the time."""
    if data.text is not None and len(data.text) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"text is {len(data.text)} characters long; at most {MAX_TEXT_CHARS} are accepted"
        )
    limits = {
        "subaccount": MAX_TEXT_CHARS,
        "keyword": MAX_KEYWORD_LENGTH,
        "umid": MAX_ID_CHARS,
        "idempotency_key": MAX_ID_CHARS,
        "actor": MAX_FIELD_CHARS,
        "purpose": MAX_FIELD_CHARS,
        "notice_version": MAX_FIELD_CHARS,
    }
    for name, limit in limits.items():
        value: str | None = getattr(data, name)
        if value is None:
            continue
        if not value.strip():
            raise InvalidInput(f"{name} is empty")
        if len(value) > limit:
            raise InvalidInput(f"{name} is longer than {limit} characters")
        if payloads.has_control(value):
            raise InvalidInput(f"{name} contains control characters (NUL, line breaks …)")
    if data.occurred_at is not None:
        normalize_time(data.occurred_at)


def _key(data: ConsentRequest) -> str | None:
    if data.umid is not None:
        return f"8x8:{data.umid}"
    return f"api:{data.idempotency_key}" if data.idempotency_key is not None else None


def _consent(
    services: Services,
    principal: Principal,
    data: ConsentRequest,
    verb: Verb,
    raw: bytes,
    received: Received,
) -> ConsentAnswer:
    tenant = tenant_of(principal)
    _check_request(data)
    result = record(
        services.ledger,
        IntakeRequest(
            tenant=tenant,
            subaccount=data.subaccount,
            msisdn=data.msisdn,
            method=data.method,
            text=data.text,
            keyword=data.keyword,
            verb=verb,
            occurred_at=data.occurred_at,
            actor=data.actor,
            key=_key(data),
            purpose=data.purpose,
            notice_version=data.notice_version,
            evidence=_evidence(raw, data.text, received, principal.key_id),
        ),
    )
    assert result.entry is not None  # a request with a verb always has an entry
    if result.duplicate:
        _same_request(services, tenant, data, verb, result.entry)
    _count_appends(result, registered=False)
    return _consent_answer(result, verb)


def _same_request(
    services: Services, tenant: str, data: ConsentRequest, verb: Verb, entry: Entry
) -> None:
    """Raise ``Conflict`` when the stored entry under this key records a different request."""
    event: Any = entry.event
    differs = []
    if entry.type != _EXPECTED_TYPE[verb]:
        differs.append(f"it is a {entry.type} entry")
    if entry.msisdn != services.ledger.normalize_msisdn(tenant, data.subaccount, data.msisdn):
        differs.append("the msisdn differs")
    if (entry.subaccount or getattr(event, "unresolved_subaccount", None)) != data.subaccount:
        differs.append("the subaccount differs")
    if data.occurred_at is not None and normalize_time(data.occurred_at) not in (
        entry.occurred_at,
        getattr(event, "provider_time", None),
    ):
        differs.append("occurred_at differs")
    if differs:
        name = f"umid {data.umid!r}" if data.umid else f"idempotency_key {data.idempotency_key!r}"
        raise Conflict(
            f"{name} was already used for the entry at position {entry.position} and "
            f"this request is different ({'; '.join(differs)}); use a new key"
        )


def _consent_answer(result: IntakeResult, verb: Verb) -> ConsentAnswer:
    assert result.entry is not None
    keyword, match, policy = _words(result)
    notes = list(result.notes)
    found = result.classification
    if verb == "opt_out" and not result.duplicate and found and found.action != "opt_out":
        notes.append(
            f"the text reads as {found.action!r}; it was recorded as an opt-out "
            "because this endpoint records opt-outs"
        )
    return ConsentAnswer(
        outcome="opted_out" if verb == "opt_out" else "opted_in",
        position=result.entry.position,
        duplicate=result.duplicate,
        msisdn=result.msisdn,
        subaccount=result.subaccount,
        scope=getattr(result.entry.event, "scope", "subaccount"),
        unresolved=result.unresolved,
        time_replaced=result.time_replaced,
        keyword=keyword,
        match=match,
        policy=policy,
        notes=notes,
    )


async def _consent_route(
    request: Request[Principal, Any, Any], services: Services, data: ConsentRequest, verb: Verb
) -> Response[ConsentAnswer]:
    raw = await request.body()
    received = _received(request, services)
    answer = await services.write(_consent, services, request.user, data, verb, raw, received)
    return Response(answer, status_code=200 if answer.duplicate else 201)


_CONSENT_DESCRIPTION = (
    " `umid` shares the 8x8 webhook's key space, so the webhook and an Automation Builder step "
    "for the same message record it once (`umid` wins when both are given); otherwise "
    "`idempotency_key` makes retries safe (reused "
    "for a different request: 409). 201 when appended, 200 with `duplicate: true` for a repeat. "
    f"`text` holds at most {MAX_TEXT_CHARS} characters; identifiers may not contain control "
    "characters (422)."
)


@post(
    "/v1/opt-outs",
    opt={"scope": "ingest"},
    tags=["intake"],
    summary="Record an opt-out (Automation Builder HTTP step or any system)",
    description=(
        "The person withdrew consent. The text, if given, is classified and stored alongside, "
        "but this endpoint always records an opt-out. An unknown subaccount (e.g. the published "
        "tutorial's body, which puts the keyword in `subaccount`) is applied to every subaccount "
        "of the tenant, marked unresolved and queued for review; the answer says how to fix the "
        "workflow. An `occurred_at` more than 5 minutes ahead is replaced by the receive time."
        + _CONSENT_DESCRIPTION
    ),
    responses={
        201: ResponseSpec(
            ConsentAnswer,
            description="The opt-out was appended",
            examples=_example("Opt-out recorded", _OPT_OUT_ANSWER),
        ),
        200: ResponseSpec(
            ConsentAnswer, description="A repeat: the original entry", generate_examples=False
        ),
    },
)
async def post_opt_out(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[
        ConsentRequest,
        Body(examples=_example("Corrected Automation Builder body", _OPT_OUT_REQUEST)),
    ],
) -> Response[ConsentAnswer]:
    """Record an opt-out; see the module guarantees."""
    return await _consent_route(request, services, data, "opt_out")


@post(
    "/v1/opt-ins",
    opt={"scope": "ingest"},
    tags=["intake"],
    summary="Record an opt-in (consent given or restored)",
    description=(
        "The person gave consent for one known subaccount. Refused (422) when the subaccount is "
        "unknown, when the text reads as an opt-out, or when `occurred_at` is more than 5 "
        "minutes in the future — never re-subscribe on doubt." + _CONSENT_DESCRIPTION
    ),
    responses={
        201: ResponseSpec(
            ConsentAnswer,
            description="The opt-in was appended",
            examples=_example("Opt-in recorded", _OPT_IN_ANSWER),
        ),
        200: ResponseSpec(
            ConsentAnswer, description="A repeat: the original entry", generate_examples=False
        ),
    },
)
async def post_opt_in(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[
        ConsentRequest, Body(examples=_example("Opt-in from a web form", _OPT_IN_REQUEST))
    ],
) -> Response[ConsentAnswer]:
    """Record an opt-in; see the module guarantees."""
    return await _consent_route(request, services, data, "opt_in")


# -- the quarantine ----------------------------------------------------------------------------
@get(
    "/v1/quarantine",
    opt={"scope": "audit"},
    tags=["intake"],
    sync_to_thread=True,
    summary="Webhook bodies that could not be understood",
    description="This tenant's quarantined webhook bodies with the reason, oldest first. "
    "`body` has invalid UTF-8 replaced; `body_base64` is the exact bytes.",
    responses={
        200: ResponseSpec(
            QuarantineList,
            description="One page, oldest first",
            examples=_example("A truncated body", _QUARANTINE_ANSWER),
        )
    },
)
def list_quarantine(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Items per page")] = 100,
    after_id: Annotated[
        int, QueryParameter(ge=0, le=MAX_ID, description="Only items after this id")
    ] = 0,
) -> QuarantineList:
    """One page of the tenant's quarantine."""
    items = quarantine.listed(
        services.ledger.store.reader(), tenant_of(request.user), after_id=after_id, limit=limit
    )
    more = len(items) == limit
    return QuarantineList(items=items, next_after_id=items[-1].id if more else None)


ROUTES = [webhook_8x8, post_opt_out, post_opt_in, list_quarantine]
