"""8x8 webhook bodies, read tolerantly: every shape in DESIGN §2 becomes one ``InboundMessage``.

Guarantees:
- ``read_webhook`` accepts any bytes: it returns an ``InboundMessage`` (an inbound text to record),
  or ``Ignored`` (a well-formed event that is not an inbound message, e.g. a delivery receipt), or
  raises ``Unreadable`` with a one-line reason a person can act on — never anything else;
- the current inbound-SMS format (``payload.source``, ``payload.body``), the Messaging Apps format
  (``payload.user.msisdn``, ``payload.content.text``, ``payload.recipient.channel``) and older
  formats (the same fields, in either place, with or without the ``payload`` envelope) are read;
- an ``InboundMessage`` has a umid, a well-formed subaccount id, a sender, a text of at most
  ``MAX_TEXT_CHARS`` characters and, if the body had one, a timestamp with an offset in canonical
  form. The sender is not validated here (the ledger's number rules do that).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec

from ledger.errors import InvalidTime
from ledger.timefmt import normalize_time
from projections.ids import is_subaccount_id

INBOUND_EVENT = "inbound_message_received"
MAX_TEXT_CHARS = 4096
"""Longest message text accepted, in characters: WhatsApp's limit, above any concatenated SMS."""
MAX_ID_CHARS = 128
"""Longest umid or idempotency key accepted, in characters."""

_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BOM = b"\xef\xbb\xbf"


class Unreadable(Exception):
    """A body that cannot be understood as an 8x8 event; ``str()`` says why."""


class Ignored(msgspec.Struct, frozen=True):
    """A well-formed 8x8 event that carries no inbound message (delivery receipts …)."""

    reason: str


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound message as 8x8 delivered it, in any of its formats."""

    umid: str
    subaccount: str
    sender: str
    text: str
    timestamp: str | None
    """Canonical RFC 3339 UTC, or ``None`` when the body had no timestamp (use receive time)."""
    channel: str
    """``sms`` for SMS, the Messaging Apps channel lower-cased (``whatsapp``, ``viber`` …)."""
    profile_name: str | None = None


def has_control(text: str) -> bool:
    """Whether ``text`` holds control, format or line/paragraph-separator characters (NUL …)."""
    if text.isascii():  # the only such ASCII characters are the C0 controls and DEL
        return _ASCII_CONTROL.search(text) is not None
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


def read_webhook(body: bytes) -> InboundMessage | Ignored:
    """The message in an 8x8 webhook body; see the module guarantees."""
    doc = _document(body)
    event_type = doc.get("eventType")
    if event_type is not None and not isinstance(event_type, str):
        raise Unreadable("eventType is not a string")
    if event_type is not None and event_type != INBOUND_EVENT:
        return Ignored(
            f"eventType {event_type[:80]!r} is not an inbound message; nothing to record"
        )
    payload = doc.get("payload", doc)
    if not isinstance(payload, dict):
        raise Unreadable("payload is not a JSON object")
    if event_type is None and _sender(payload) is None:
        raise Unreadable("not an 8x8 inbound message: no eventType and no sender")
    return _message(doc, payload)


def _document(body: bytes) -> dict[str, Any]:
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
    if not isinstance(doc, dict):
        raise Unreadable(f"the body is a JSON {type(doc).__name__}, not an object")
    return doc


def _message(doc: dict[str, Any], payload: dict[str, Any]) -> InboundMessage:
    chat = doc.get("namespace") == "ChatApps" or isinstance(payload.get("user"), dict)
    sender = _sender(payload)
    if sender is None:
        raise Unreadable("no sender (payload.source or payload.user.msisdn)")
    if chat and sender.isascii() and sender.isdigit():
        sender = "+" + sender  # Messaging Apps ids are international numbers without the '+'
    return InboundMessage(
        umid=_umid(payload),
        subaccount=_subaccount(payload),
        sender=sender,
        text=_text(payload, chat),
        timestamp=_timestamp(payload),
        channel=_channel(payload) if chat else "sms",
        profile_name=_profile_name(payload),
    )


def _field(obj: dict[str, Any], *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)  # type: ignore[assignment]
    return obj


def _sender(payload: dict[str, Any]) -> str | None:
    for value in (payload.get("source"), _field(payload, "user", "msisdn")):
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _text(payload: dict[str, Any], chat: bool) -> str:
    found = [payload.get("body"), _field(payload, "content", "text")]
    if chat:
        found.reverse()
    text = next((value for value in found if isinstance(value, str)), None)
    if text is None:
        raise Unreadable("no message text (payload.body or payload.content.text)")
    if len(text) > MAX_TEXT_CHARS:
        raise Unreadable(
            f"the text is {len(text)} characters long; at most {MAX_TEXT_CHARS} are accepted"
        )
    return text


def _umid(payload: dict[str, Any]) -> str:
    umid = payload.get("umid")
    if isinstance(umid, int) and not isinstance(umid, bool):
        umid = str(umid)
    if not isinstance(umid, str) or not umid.strip():
        raise Unreadable("no umid (payload.umid), so a retry could not be recognised")
    if len(umid) > MAX_ID_CHARS or has_control(umid):
        raise Unreadable(
            f"payload.umid is not a usable id (at most {MAX_ID_CHARS} printable characters)"
        )
    return umid.strip()


def _subaccount(payload: dict[str, Any]) -> str:
    value = payload.get("subAccountId")
    if not isinstance(value, str):
        raise Unreadable("no subAccountId (payload.subAccountId)")
    if not is_subaccount_id(value):
        raise Unreadable(
            f"payload.subAccountId {value[:80]!r} is not a valid subaccount id "
            "(1–64 letters, digits, '_', '.', ':', '-')"
        )
    return value


def _timestamp(payload: dict[str, Any]) -> str | None:
    value = payload.get("timestamp")
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unreadable("payload.timestamp is not a string")
    try:
        return normalize_time(value)
    except InvalidTime as exc:
        raise Unreadable(f"payload.timestamp: {exc}") from exc


def _channel(payload: dict[str, Any]) -> str:
    value = _field(payload, "recipient", "channel")
    if isinstance(value, str) and _CHANNEL.fullmatch(value.strip().lower()):
        return value.strip().lower()
    return "chatapps"


def _profile_name(payload: dict[str, Any]) -> str | None:
    name = _field(payload, "user", "name")
    return name[:256] if isinstance(name, str) and name else None
