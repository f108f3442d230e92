"""Request bodies read tolerantly: 8x8 webhooks and opt-out requests in every shape they arrive in.

Guarantees (docs/http-api.md, "Intake"):
- ``read_webhook`` accepts any bytes and returns an ``InboundMessage`` (an inbound text to
  record), a ``Receipt`` (a delivery receipt: it may settle an uncertain reply), ``Ignored``
  (a well-formed event that carries no message to record: a status, a picture without text),
  ``ConsentFields`` (an Automation Builder step's body,
  ``msisdn`` + ``subaccount`` without ``eventType``), or raises ``Unreadable`` with a one-line
  reason a person can act on — never anything else;
- the current inbound-SMS format (``payload.source``, ``payload.body``), the Messaging Apps
  format (``payload.user.msisdn``, ``payload.content.text`` or a button's title or payload,
  ``payload.recipient.channel``), older formats (the same fields in either place, with or
  without the ``payload`` envelope) and Automation Builder's ``data.payload`` are read;
- ids that are not ids (empty, ``undefined``, ``null``, an unrendered ``{{template}}``) read as
  absent; a message without a usable umid or subaccount is still a message;
- ``read_consent_body`` accepts any JSON object: unknown fields are ignored here (the raw body
  is the evidence), a field of the wrong type reads as absent or, for a text, as its JSON
  rendering; only a body that is not a JSON object is ``Unreadable``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec

from api.limits import MAX_FIELD_CHARS, MAX_ID_CHARS
from projections.ids import usable_id

INBOUND_EVENT = "inbound_message_received"
RECEIPT_EVENT = "outbound_message_status_changed"

_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BOM = b"\xef\xbb\xbf"
_MEDIA_TYPES = frozenset(
    {"image", "audio", "video", "location", "sticker", "file", "document", "contacts", "voice"}
)
"""Messaging Apps types that carry no text of their own: ignored when they have none."""
_CONTENT_TEXT_KEYS = ("text", "title", "payload", "body", "caption")
"""Where a button, quick-reply, list or interactive answer keeps its words, in that order."""
_METHODS = frozenset({"automation-http", "api", "import"})


class Unreadable(Exception):
    """A body that cannot be understood; ``str()`` says why."""


class Ignored(msgspec.Struct, frozen=True):
    """A well-formed 8x8 event that carries no message to record (delivery receipts …)."""

    reason: str


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery receipt for an outbound SMS (it may settle an uncertain reply)."""

    client_message_id: str | None
    umid: str | None
    state: str | None
    error_code: str | None


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound message as 8x8 delivered it, in any of its formats."""

    umid: str | None
    """The message id when it is usable (see the module guarantees)."""
    subaccount: str | None
    """``subAccountId`` as received, when it is a string (the ledger decides if it is an id)."""
    sender: str
    text: str
    text_is_rendering: bool = False
    """The text field was not a string: ``text`` is its JSON rendering (only a reading as an
    opt-out is recorded from it)."""
    timestamp: str | None
    """The provider's timestamp as received (the ledger reads it), ``None`` when absent."""
    destination: str | None = None
    channel: str
    """``sms`` for SMS, the Messaging Apps channel lower-cased (``whatsapp``, ``viber`` …)."""
    profile_name: str | None = None


class ConsentFields(msgspec.Struct, frozen=True, kw_only=True):
    """An opt-out or opt-in request's fields, read tolerantly (absent or unusable: ``None``)."""

    msisdn: str | None = None
    subaccount: str | None = None
    text: str | None = None
    text_is_rendering: bool = False
    keyword: str | None = None
    umid: str | None = None
    idempotency_key: str | None = None
    occurred_at: str | None = None
    method: str = "automation-http"
    actor: str | None = None
    purpose: str | None = None
    notice_version: str | None = None
    skipped: tuple[str, ...] = ()
    """Fields that were given but could not be used (kept in the evidence only)."""


def has_control(text: str) -> bool:
    """Whether ``text`` holds control, format or line/paragraph-separator characters (NUL …)."""
    if text.isascii():  # the only such ASCII characters are the C0 controls and DEL
        return _ASCII_CONTROL.search(text) is not None
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


# -- the 8x8 webhook ---------------------------------------------------------------------------
def read_webhook(body: bytes) -> InboundMessage | Ignored | ConsentFields | Receipt:
    """The message in an 8x8 webhook body; see the module guarantees."""
    doc = document(body)
    event_type = usable_id(doc.get("eventType")) if isinstance(doc.get("eventType"), str) else None
    if event_type == RECEIPT_EVENT:
        return _receipt(_payload(doc))
    if event_type is not None and event_type != INBOUND_EVENT:
        return Ignored(
            f"eventType {event_type[:80]!r} is not an inbound message; nothing to record"
        )
    payload = _payload(doc)
    if event_type is None and _sender(payload) is None:
        if "msisdn" in doc:
            return consent_fields(doc)
        raise Unreadable("not an 8x8 inbound message: no eventType and no sender")
    return _message(doc, payload)


def _receipt(payload: dict[str, Any]) -> Receipt:
    status = payload.get("status")
    state = _field(status, "state")
    code = _field(status, "errorCode")
    return Receipt(
        client_message_id=_id(payload.get("clientMessageId")),
        umid=_id(payload.get("umid")),
        state=state.lower()[:32] if isinstance(state, str) else None,
        error_code=str(code)[:32] if isinstance(code, int | str) and code not in (0, "0") else None,
    )


def document(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object; ``Unreadable`` saying why it is not one."""
    body = body.removeprefix(_BOM)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the body is not valid UTF-8 (byte {exc.start})") from exc
    if not body.strip():
        raise Unreadable("the body is empty")
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise Unreadable(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the JSON decoder gives up on very deep nesting
        raise Unreadable("the body is not valid JSON: it is nested too deeply") from exc
    if not isinstance(doc, dict):
        raise Unreadable(f"the body is a JSON {type(doc).__name__}, not an object")
    return doc


def _payload(doc: dict[str, Any]) -> dict[str, Any]:
    """The message object: ``payload``, Automation Builder's ``data.payload``, or the body."""
    for found in (doc.get("payload"), _field(doc, "data", "payload")):
        if isinstance(found, dict):
            return found
    return doc


def _message(doc: dict[str, Any], payload: dict[str, Any]) -> InboundMessage | Ignored:
    chat = doc.get("namespace") == "ChatApps" or isinstance(payload.get("user"), dict)
    sender = _sender(payload)
    if sender is None:
        raise Unreadable("no usable sender (payload.source or payload.user.msisdn)")
    if chat and sender.isascii() and sender.isdigit():
        sender = "+" + sender  # Messaging Apps ids are international numbers without the '+'
    found = _text(payload, chat)
    if isinstance(found, Ignored):
        return found
    text, rendering = found
    subaccount = payload.get("subAccountId")
    timestamp = payload.get("timestamp")
    return InboundMessage(
        umid=_id(payload.get("umid")),
        subaccount=subaccount if isinstance(subaccount, str) else None,
        sender=sender,
        text=text,
        text_is_rendering=rendering,
        timestamp=None if timestamp is None else _string(timestamp),
        destination=_id(payload.get("destination")),
        channel=_channel(payload) if chat else "sms",
        profile_name=_profile_name(payload),
    )


def _field(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _id(value: Any) -> str | None:
    found = usable_id(value)
    if found is None or len(found) > MAX_ID_CHARS or has_control(found):
        return None
    return found


def _string(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _sender(payload: dict[str, Any]) -> str | None:
    for value in (payload.get("source"), _field(payload, "user", "msisdn")):
        found = usable_id(value)
        if found is not None:
            return found
    return None


def _text(payload: dict[str, Any], chat: bool) -> tuple[str, bool] | Ignored:
    """The message's words and whether they are a JSON rendering of a non-string field."""
    content = payload.get("content")
    found = [payload.get("body"), _field(content, "text")]
    if chat:
        found.reverse()
    for value in found:
        if isinstance(value, str) and "{{" not in value:
            return value, False
    kind = payload.get("type")
    kind = kind.strip().lower() if isinstance(kind, str) else None
    if chat and kind != "text":
        words = _content_words(content, depth=4)
        if words is not None:
            return words, False
        if kind in _MEDIA_TYPES:
            return Ignored(f"a Messaging Apps {kind} message without text; nothing to record")
    for value in found:
        if value is not None and not isinstance(value, str):
            return _string(value), True
    if kind is not None and kind != "text":
        raise Unreadable(f"a Messaging Apps message of type {kind[:40]!r} with no text found")
    raise Unreadable("no usable message text (payload.body or payload.content.text)")


def _content_words(content: Any, depth: int) -> str | None:
    """The words of a button, quick-reply, list or interactive answer: the first string under
    a text, title or payload key, searched breadth-first a few levels deep."""
    level = [content]
    for _ in range(depth):
        nested: list[Any] = []
        for obj in level:
            if not isinstance(obj, dict):
                continue
            for key in _CONTENT_TEXT_KEYS:
                value = obj.get(key)
                if isinstance(value, str) and value.strip() and "{{" not in value:
                    return value
            nested.extend(v for v in obj.values() if isinstance(v, dict | list))
            nested.extend(x for v in obj.values() if isinstance(v, list) for x in v)
        level = nested
    return None


def _channel(payload: dict[str, Any]) -> str:
    value = _field(payload, "recipient", "channel")
    if isinstance(value, str) and _CHANNEL.fullmatch(value.strip().lower()):
        return value.strip().lower()
    return "chatapps"


def _profile_name(payload: dict[str, Any]) -> str | None:
    name = _field(payload, "user", "name")
    return name[:256] if isinstance(name, str) and name else None


# -- opt-out and opt-in bodies -----------------------------------------------------------------
def read_consent_body(body: bytes) -> ConsentFields:
    """The fields of an opt-out or opt-in body; see the module guarantees."""
    return consent_fields(document(body))


def consent_fields(doc: dict[str, Any]) -> ConsentFields:
    """The fields of an opt-out or opt-in request from a decoded JSON object."""
    skipped: list[str] = []

    def short(name: str, limit: int = MAX_FIELD_CHARS) -> str | None:
        value = doc.get(name)
        if value is None:
            return None
        usable = isinstance(value, str) and value.strip() and len(value) <= limit
        if usable and not has_control(value):
            return str(value)
        skipped.append(name)
        return None

    text = doc.get("text")
    given = doc.get("method")
    method = given if isinstance(given, str) and given in _METHODS else None
    if given is not None and method is None:
        skipped.append("method")
    return ConsentFields(
        msisdn=usable_id(doc.get("msisdn")),
        subaccount=_string(doc["subaccount"]) if doc.get("subaccount") is not None else None,
        text=None if text is None else _string(text),
        text_is_rendering=text is not None and not isinstance(text, str),
        keyword=short("keyword", 64),
        umid=_id(doc.get("umid")),
        idempotency_key=_id(doc.get("idempotency_key")),
        occurred_at=None if doc.get("occurred_at") is None else _string(doc["occurred_at"]),
        method=method or "automation-http",
        actor=short("actor"),
        purpose=short("purpose"),
        notice_version=short("notice_version"),
        skipped=tuple(skipped),
    )
