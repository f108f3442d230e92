"""Intake endpoints: the 8x8 webhook, opt-outs and opt-ins from any system, the quarantine.

Guarantees (docs/http-api.md, "Intake"):
- no STOP is lost: ``POST /v1/webhooks/8x8`` and ``POST /v1/opt-outs`` accept any body from a
  key with the ingest scope and answer 2xx unless the store cannot write (503, so 8x8
  retries): what may mean "stop" is recorded and suppresses, or — when it names no usable
  number, or cannot be read — is kept in the quarantine (200, ``quarantined``); an event that is
  not an inbound message is ignored; a repeat of the same request returns the original answer
  and writes nothing;
- ``POST /v1/opt-ins`` stays strict: 201 when appended, 200 with ``duplicate: true`` for a
  repeat, 409 for a key reused by a different request, 422/400 for input to fix — doubt never
  re-subscribes;
- every request's raw body (exact bytes, capped as docs/evidence.md says), text, remote
  address, request id and key id are kept as evidence; who performed the act is the person
  (``data-subject``), who recorded it is the key, and a client's ``actor`` is kept as a claim;
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
from api.limits import MAX_FIELD_CHARS, MAX_ID_CHARS, MAX_TEXT_CHARS
from api.payloads import ConsentFields, Ignored, InboundMessage, Receipt, Unreadable
from api.quarantine import QuarantinedBody, Received
from api.state import Services, services_of
from ledger.entries import Evidence, body_evidence
from ledger.errors import InvalidInput
from ledger.keywords import MAX_KEYWORD_LENGTH
from ledger.timefmt import normalize_time
from projections.eightxeight import receipts
from projections.ids import client_key, message_key, umid_key, usable_id
from projections.intake import (
    IntakeRequest,
    IntakeResult,
    Prepared,
    Verb,
    prepare,
    record,
    record_each,
)

T = TypeVar("T")
MAX_ID = 2**63 - 1
"""The largest id SQLite stores."""


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
    """An opt-in (strict), or the documented shape of an opt-out (read tolerantly: every field
    but a usable ``msisdn`` may be missing or malformed, and unknown fields are kept)."""

    msisdn: str
    subaccount: str
    text: str | None = None
    keyword: str | None = None
    umid: str | None = None
    idempotency_key: str | None = None
    occurred_at: str | None = None
    method: Literal["automation-http", "api", "import"] = "automation-http"
    actor: str | None = None
    """Who the client says performed it: kept as ``claimed_actor``, never trusted."""
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
    flagged: str | None = None
    """Why the opt-out was queued for a person to check (it suppresses meanwhile)."""


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
def _received(request: Request[Any, Any, Any]) -> Received:
    client = request.client
    return Received(
        content_type=request.headers.get("content-type"),
        remote_addr=client.host if client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def _evidence(
    raw: bytes, text: str | None, received: Received, key_id: str, profile_name: str | None = None
) -> Evidence:
    return body_evidence(
        raw,
        text,
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


def _key(fields: ConsentFields) -> str | None:
    """The idempotency key of an opt-out or opt-in request (``umid`` wins)."""
    if fields.umid is not None:
        return umid_key(fields.umid)
    return client_key(fields.idempotency_key) if fields.idempotency_key is not None else None


def consent_request(
    tenant: str,
    fields: ConsentFields,
    verb: Verb,
    evidence: Evidence,
    principal: Principal,
    url_subaccount: str | None = None,
) -> IntakeRequest:
    """The intake request of an opt-out or opt-in body (the Automation Builder shape too)."""
    assert fields.msisdn is not None
    return IntakeRequest(
        tenant=tenant,
        subaccount=fields.subaccount,
        url_subaccount=url_subaccount,
        msisdn=fields.msisdn,
        method=cast(Any, fields.method),
        text=fields.text,
        keyword=fields.keyword,
        verb=verb,
        occurred_at=fields.occurred_at,
        key=_key(fields),
        purpose=fields.purpose,
        notice_version=fields.notice_version,
        evidence=evidence,
        recorded_by=principal.actor,
        claimed_actor=fields.actor,
    )


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
    try:
        message = payloads.read_webhook(hook.raw)
    except Unreadable as exc:
        return _quarantined(services, hook, str(exc))
    if isinstance(message, Ignored):
        metrics.WEBHOOK_OUTCOMES.labels("ignored").inc()
        return WebhookSkipped(outcome="ignored", position=None, reason=message.reason)
    if isinstance(message, Receipt):
        metrics.WEBHOOK_OUTCOMES.labels("ignored").inc()
        reason = receipts.settle(
            services.ledger,
            tenant_of(hook.principal),
            client_message_id=message.client_message_id,
            umid=message.umid,
            state=message.state,
            error_code=message.error_code,
        )
        return WebhookSkipped(outcome="ignored", position=None, reason=reason)
    request = _webhook_request(tenant_of(hook.principal), message, hook)
    if request is None:
        return _quarantined(services, hook, "no usable number (msisdn)")
    try:
        prepared = prepare(services.ledger, request)
    except InvalidInput as exc:  # an invalid number, an opt-in dated in the future …
        return _quarantined(services, hook, str(exc))
    rendering = isinstance(message, InboundMessage | ConsentFields) and message.text_is_rendering
    if rendering and not (isinstance(prepared, Prepared) and prepared.action in _STOPPING):
        return _quarantined(services, hook, "the message text is not a string")
    return prepared if isinstance(prepared, Prepared) else _webhook_answer(prepared)


_STOPPING = ("opt_out", "review")
"""What a text read from a non-string field may record: nothing that could re-subscribe."""


def _webhook_request(
    tenant: str, message: InboundMessage | ConsentFields, hook: Hook
) -> IntakeRequest | None:
    """The intake request of one webhook body (``None``: it names no usable number)."""
    if isinstance(message, ConsentFields):  # an Automation Builder step posted here
        if message.msisdn is None:
            return None
        evidence = _evidence(hook.raw, message.text, hook.received, hook.principal.key_id)
        return consent_request(tenant, message, "opt_out", evidence, hook.principal)
    key = None
    if message.umid is not None:
        key = umid_key(message.umid)
    elif message.timestamp is not None:
        key = message_key(message.sender, message.destination, message.timestamp, message.text)
    return IntakeRequest(
        tenant=tenant,
        subaccount=message.subaccount,
        msisdn=message.sender,
        method="8x8-webhook",
        text=message.text,
        occurred_at=message.timestamp,
        channel=message.channel,
        key=key,
        evidence=_evidence(
            hook.raw, message.text, hook.received, hook.principal.key_id, message.profile_name
        ),
        register_subaccount=True,
        recorded_by=hook.principal.actor,
        destination=message.destination,
    )


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
        "retry: `ignored` for events that are not inbound messages (and media without text), "
        "`quarantined` (with the reason; see `GET /v1/quarantine`) for bodies that cannot be "
        "understood or name no usable number. A message without a usable `subAccountId` that "
        "means stop is applied to every subaccount of the tenant and queued for review. An "
        "Automation Builder step's body (`msisdn`, `subaccount`, no `eventType`) posted here "
        "is read as an opt-out, as `POST /v1/opt-outs` reads it. A repeat of a umid returns "
        "the original outcome with `duplicate: true`; a umid reused for another number or text "
        "is recorded under a derived key and queued for review. 503 only when the store cannot "
        "write (8x8 retries later)."
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
    received = _received(request)
    answer: WebhookAnswer | WebhookSkipped = await services.intake(
        Hook(request.user, raw, received)
    )
    return answer


# -- opt-outs ----------------------------------------------------------------------------------
def _opt_out(
    services: Services,
    principal: Principal,
    raw: bytes,
    url_subaccount: str | None,
    received: Received,
) -> ConsentAnswer | WebhookSkipped:
    """Record one opt-out body, or keep it in the quarantine when it names no usable number."""
    hook = Hook(principal, raw, received)
    try:
        fields = payloads.read_consent_body(raw)
    except Unreadable as exc:
        return _quarantined(services, hook, str(exc))
    if fields.msisdn is None:
        return _quarantined(services, hook, "no usable number (msisdn)")
    evidence = _evidence(raw, fields.text, received, principal.key_id)
    request = consent_request(
        tenant_of(principal), fields, "opt_out", evidence, principal, url_subaccount
    )
    try:
        result = record(services.ledger, request)
    except InvalidInput as exc:  # the number cannot be read
        return _quarantined(services, hook, str(exc))
    _count_appends(result, registered=False)
    answer = _consent_answer(result, "opt_out")
    if fields.skipped:
        answer.notes.append(
            f"not used (kept in the evidence): {', '.join(fields.skipped)} — not of the "
            "documented type or length"
        )
    return answer


@dataclass
class _OptOutOperation(Operation):
    """The opt-out route reads its raw body itself (any body is kept); this documents it."""

    def __post_init__(self) -> None:
        schema = OpenAPISchema(
            type=OpenAPIType.OBJECT,
            required=["msisdn"],
            properties={
                name: OpenAPISchema(type=OpenAPIType.STRING)
                for name in (
                    "msisdn",
                    "subaccount",
                    "text",
                    "keyword",
                    "umid",
                    "idempotency_key",
                    "occurred_at",
                    "method",
                    "actor",
                    "purpose",
                    "notice_version",
                )
            },
        )
        self.request_body = RequestBody(
            required=True,
            description="The opt-out (`ConsentRequest`'s fields, read tolerantly).",
            content={
                "application/json": OpenAPIMediaType(
                    schema=schema,
                    examples={
                        "corrected-automation-body": Example(
                            summary="Corrected Automation Builder body", value=_OPT_OUT_REQUEST
                        ),
                        "tutorial-body": Example(
                            summary="The published tutorial's body (kept, applied tenant-wide)",
                            value={"msisdn": "+6581968289", "subaccount": "STOP"},
                        ),
                    },
                )
            },
        )


@post(
    "/v1/opt-outs",
    opt={"scope": "ingest", "problems": (401, 403, 413, 503)},
    tags=["intake"],
    summary="Record an opt-out (Automation Builder HTTP step or any system)",
    description=(
        "The person withdrew consent: this endpoint always records an opt-out and never "
        "answers 4XX to a body from a key with the ingest scope. The text, if given, is "
        "classified and stored alongside; a text that reads as an opt-in or HELP queues the "
        "opt-out for review. The subaccount is the body's `subaccount` when it is a known one, "
        "else the URL's `?subaccount=` when that is a known one (one workflow per subaccount); "
        "otherwise — absent, `undefined`, an unrendered template, message text, unknown — the "
        "opt-out applies to every subaccount of the tenant, marked unresolved and queued for "
        "review (the answer says how to fix the workflow). Without `text`, a `subaccount` that "
        "names no known subaccount is read as the text (the published tutorial puts the keyword "
        "there), so `STOP ALL` stays tenant-wide. Unknown fields, a `text` that is not a string "
        "or is long, an unreadable `occurred_at` (the receive time is used) are kept in the "
        "evidence, not refused; an `occurred_at` more than 5 minutes ahead is replaced by the "
        "receive time. A body that names no usable number (E.164, or national digits with a "
        "region known from the subaccount or the tenant) is kept in the quarantine and answered "
        "200 `quarantined`. `umid` shares the 8x8 webhook's key space, so the webhook and an "
        "Automation Builder step for the same message record it once; otherwise "
        "`idempotency_key` makes retries safe. A key reused for another number or text is no "
        "repeat: it is recorded under a derived key and queued for review. 201 when appended, "
        "200 with `duplicate: true` for a repeat."
    ),
    operation_class=_OptOutOperation,
    responses={
        201: ResponseSpec(
            ConsentAnswer,
            description="The opt-out was appended",
            examples=_example("Opt-out recorded", _OPT_OUT_ANSWER),
        ),
        200: ResponseSpec(
            ConsentAnswer | WebhookSkipped,
            description="A repeat (the original entry), or kept in the quarantine",
            generate_examples=False,
        ),
    },
)
async def post_opt_out(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    subaccount: Annotated[
        str | None,
        QueryParameter(
            description="The subaccount this workflow posts for, used when the body names no "
            "known subaccount (an unknown one is never registered)",
        ),
    ] = None,
) -> Response[ConsentAnswer | WebhookSkipped]:
    """Record an opt-out; see the module guarantees."""
    raw = await request.body()
    received = _received(request)
    answer = await services.write(_opt_out, services, request.user, raw, subaccount, received)
    created = isinstance(answer, ConsentAnswer) and not answer.duplicate
    return Response(answer, status_code=201 if created else 200)


# -- opt-ins -----------------------------------------------------------------------------------
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
    for name in ("umid", "idempotency_key"):
        value = getattr(data, name)
        if value is not None and usable_id(value) is None:
            raise InvalidInput(f"{name} {value[:80]!r} is not an id (undefined, null, a template)")
    if data.occurred_at is not None:
        normalize_time(data.occurred_at)


def _opt_in(
    services: Services,
    principal: Principal,
    data: ConsentRequest,
    raw: bytes,
    received: Received,
) -> ConsentAnswer:
    _check_request(data)
    fields = ConsentFields(**msgspec.structs.asdict(data))
    evidence = _evidence(raw, data.text, received, principal.key_id)
    request = consent_request(tenant_of(principal), fields, "opt_in", evidence, principal)
    result = record(services.ledger, request)
    _count_appends(result, registered=False)
    return _consent_answer(result, "opt_in")


def _consent_answer(result: IntakeResult, verb: Verb) -> ConsentAnswer:
    assert result.entry is not None  # a request with a verb always has an entry
    keyword, match, policy = _words(result)
    notes = list(result.notes)
    found = result.classification
    if verb == "opt_out" and not result.duplicate and found and found.action in ("review", "none"):
        notes.append(
            f"the text reads as {found.action!r}; it was recorded as an opt-out because this "
            "endpoint records opt-outs"
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
        flagged=result.flagged,
    )


@post(
    "/v1/opt-ins",
    opt={"scope": "ingest"},
    tags=["intake"],
    summary="Record an opt-in (consent given or restored)",
    description=(
        "The person gave consent for one known subaccount. Refused (422) when the subaccount is "
        "unknown or not an id, when the text reads as an opt-out, or when `occurred_at` is "
        "unreadable or more than 5 minutes in the future — never re-subscribe on doubt. "
        "`umid` shares the 8x8 webhook's key space; otherwise `idempotency_key` makes retries "
        "safe (reused for a different request: 409). 201 when appended, 200 with "
        f"`duplicate: true` for a repeat. `text` holds at most {MAX_TEXT_CHARS} characters; "
        "identifiers may not contain control characters (422). `actor` is kept as a claim; "
        "the entry's actor is the person and `recorded_by` the key."
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
    raw = await request.body()
    received = _received(request)
    answer = await services.write(_opt_in, services, request.user, data, raw, received)
    return Response(answer, status_code=200 if answer.duplicate else 201)


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
        services.ledger.store, tenant_of(request.user), after_id=after_id, limit=limit
    )
    more = len(items) == limit
    return QuarantineList(items=items, next_after_id=items[-1].id if more else None)


ROUTES = [webhook_8x8, post_opt_out, post_opt_in, list_quarantine]
