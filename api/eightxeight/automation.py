"""Pushing a workflow definition through 8x8's Automation API, and remembering it.

Guarantees: ``push`` creates the definition (``POST …/definitions``) the first time for a
(subaccount, account, channel), and updates that one (``PUT …/definitions/{id}``) on every
later push, found from the ledger's ``8x8.workflow`` configuration entries; only after 8x8
answered 2xx is an entry appended (so the next push updates what exists); a definition 8x8 no
longer knows (404) is created again. ``request`` is exactly what is sent (``--dry-run`` prints
it, the key masked). A refusal from 8x8 is an ``EightByEightError`` with its status and body.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import msgspec

from api.eightxeight.credentials import masked
from ledger.errors import LedgerError
from ledger.events import WorkflowPushed
from ledger.store import Draft
from projections.ids import new_key
from projections.ledger import ConsentLedger


class EightByEightError(LedgerError):
    """8x8 refused or did not answer a request (the message says which and why)."""


class PushRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One Automation API request: method, URL, headers and the definition."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]

    def shown(self) -> dict[str, Any]:
        """The request with the key masked (what ``--dry-run`` prints)."""
        headers = dict(self.headers)
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        headers["Authorization"] = f"Bearer {masked(token)}"
        return {"method": self.method, "url": self.url, "headers": headers, "body": self.body}


class Pushed(msgspec.Struct, frozen=True, kw_only=True):
    """What a push did."""

    definition_id: str
    created: bool
    version: int | None
    position: int


def previous(
    ledger: ConsentLedger, tenant: str, subaccount: str, account: str, channel: str
) -> str | None:
    """The definition id the last push for (subaccount, account, channel) recorded."""
    found = None
    for stored in ledger.read_model.entries_of_types(
        tenant, ("8x8.workflow",), subaccount=subaccount
    ):
        event = stored.entry.event
        if isinstance(event, WorkflowPushed) and (event.account, event.channel) == (
            account,
            channel,
        ):
            found = event.definition_id
    return found


def request(
    base: str, account: str, key: str, document: dict[str, Any], definition_id: str | None
) -> PushRequest:
    """The create (no id yet) or update request for ``document``."""
    url = f"{base}/api/v1/accounts/{account}/definitions"
    return PushRequest(
        method="PUT" if definition_id else "POST",
        url=f"{url}/{definition_id}" if definition_id else url,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=document,
    )


def push(
    ledger: ConsentLedger,
    tenant: str,
    *,
    subaccount: str,
    account: str,
    channel: str,
    mode: str,
    url: str,
    document: dict[str, Any],
    base: str,
    key: str,
    actor: str,
    client: httpx.Client | None = None,
) -> Pushed:
    """Create or update the definition at 8x8 and record it (see the module guarantees)."""
    known = previous(ledger, tenant, subaccount, account, channel)
    http = client or httpx.Client(timeout=30)
    try:
        answer = _send(http, request(base, account, key, document, known))
        if known is not None and answer.status_code == 404:
            known = None
            answer = _send(http, request(base, account, key, document, None))
    finally:
        if client is None:
            http.close()
    if not answer.is_success:
        raise EightByEightError(
            f"8x8 answered {answer.status_code} to the workflow push: {answer.text[:500]}"
        )
    definition_id, version = _identity(answer, known)
    body = msgspec.json.encode(document)
    event = WorkflowPushed(
        account=account,
        definition_id=definition_id,
        channel=channel,
        mode=mode,
        url=url,
        document_sha256=hashlib.sha256(body).hexdigest(),
        created=known is None,
        actor=actor,
    )
    draft = Draft(
        tenant=tenant,
        key=new_key("8x8-workflow"),
        subaccount=subaccount,
        msisdn=None,
        occurred_at=None,
        event=event,
    )
    appended = ledger.append([draft])[0]
    return Pushed(
        definition_id=definition_id,
        created=known is None,
        version=version,
        position=appended.position,
    )


def _send(http: httpx.Client, req: PushRequest) -> httpx.Response:
    try:
        return http.request(
            req.method, req.url, headers=req.headers, content=msgspec.json.encode(req.body)
        )
    except httpx.HTTPError as exc:
        raise EightByEightError(f"8x8's Automation API did not answer ({req.url}): {exc}") from exc


def _identity(answer: httpx.Response, known: str | None) -> tuple[str, int | None]:
    """The definition id and version 8x8 answered (top level or under ``definition``, as its
    schema and its example disagree; else the ``Location`` header; else the id pushed to)."""
    try:
        doc = answer.json()
    except ValueError:
        doc = {}
    if isinstance(doc, list) and doc:  # a version history, newest first
        doc = doc[0]
    nested = doc.get("definition") if isinstance(doc, dict) else None
    for where in (doc, nested):
        if isinstance(where, dict) and isinstance(where.get("id"), str):
            version = where.get("version")
            return where["id"], version if isinstance(version, int) else None
    location = answer.headers.get("location")
    if location:
        return location.rstrip("/").rsplit("/", 1)[-1], None
    if known is not None:
        return known, None
    raise EightByEightError("8x8 created the definition but its answer names no id")
