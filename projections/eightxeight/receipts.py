"""Delivery receipts settle uncertain replies (README "Connecting 8x8").

Guarantees: a receipt (``outbound_message_status_changed``) whose ``clientMessageId`` names an
``uncertain`` reply of the tenant appends, once (its key is unique to the reply), ``reply.sent``
(8x8 took it: queued, sent, delivered, read) or ``reply.failed`` (rejected, undelivered), which
closes its review item; any other receipt changes nothing. A receipt never causes a send.
"""

from __future__ import annotations

from ledger.events import Event, ReplyFailed, ReplySent
from ledger.store import Draft
from projections.eightxeight.outbox import settle_key
from projections.ledger import ConsentLedger

UNDELIVERED = ("rejected", "undelivered")
_RECEIPT = "a delivery receipt (outbound_message_status_changed)"


def settle(
    ledger: ConsentLedger,
    tenant: str,
    *,
    client_message_id: str | None,
    umid: str | None,
    state: str | None,
    error_code: str | None,
) -> str:
    """Settle the reply a receipt names, if it is uncertain; says what was done."""
    row = (
        ledger.read_model.reply_for_message(tenant, client_message_id)
        if client_message_id
        else None
    )
    if row is None:
        return f"{_RECEIPT} that names no reply of this ledger; nothing to record"
    if row.state != "uncertain":
        return (
            f"{_RECEIPT} for the reply at position {row.position} ({row.state}): nothing to record"
        )
    event: Event
    if state in UNDELIVERED:
        event = ReplyFailed(
            position=row.position,
            code=error_code or str(state),
            message=f"delivery receipt: {state}",
            via="receipt",
            settles=row.outcome_position,
        )
    else:
        event = ReplySent(
            position=row.position,
            umid=umid,
            via="receipt",
            state=state,
            settles=row.outcome_position,
        )
    draft = Draft(
        tenant=tenant,
        key=settle_key(row),
        subaccount=row.subaccount,
        msisdn=row.msisdn,
        occurred_at=None,
        event=event,
    )
    ledger.append([draft])
    return f"{_RECEIPT} settled the uncertain reply at position {row.position}"
