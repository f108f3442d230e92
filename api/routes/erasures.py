"""``POST /v1/erasures``: erase evidence of an entry or of a number (docs/adopting.md).

Guarantees: the rules are those of ``projections.erasure`` (the CLI's ``erase`` follows the
same): the evidence is erased and a tombstone appended in one atomic unit, with the key as
actor; consent never changes; a position of another tenant answers like one without evidence.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body

from api.auth import tenant_of
from api.keys import Principal
from api.state import Services
from ledger.errors import InvalidInput
from projections.erasure import MAX_REASON, Erasure, erase_number, erase_position


class ErasureRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to erase: one entry's evidence (``position``) or every evidence record of a number
    (``msisdn``; national digits read in ``subaccount``'s region), and why."""

    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]
    """A ticket reference: it is kept in the immutable log, so never personal data."""
    position: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    msisdn: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    subaccount: Annotated[str, msgspec.Meta(max_length=64)] | None = None


@post(
    "/v1/erasures",
    opt={"scope": "admin"},
    sync_to_thread=True,
    status_code=201,
    tags=["admin"],
    summary="Erase evidence (personal data) of an entry or a number",
    description="Erases the salted evidence of the entry at `position`, or of every entry of "
    "`msisdn` with the quarantined bodies that hold it, and appends an `evidence.erased` "
    "tombstone (when, why, by whom) in the same atomic append. The entries, their hashes, "
    "proofs, checkpoints and every decision are unchanged: an opted-out number stays "
    "suppressed. `reason` is kept in the immutable log: give a ticket reference, never "
    "personal data. Nothing left to erase: 404.",
    responses={
        201: ResponseSpec(
            data_container=Erasure,
            description="What was erased",
            examples=[
                Example(
                    summary="Every evidence record of a number",
                    value={
                        "tombstone": 57,
                        "positions": [2, 3],
                        "quarantined": 1,
                        "scrubbed": True,
                    },
                )
            ],
        )
    },
)
def post_erasure(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    data: Annotated[
        ErasureRequest,
        Body(
            examples=[
                Example(
                    summary="A data subject's erasure request",
                    value={"msisdn": "+6581968289", "reason": "DSR-2026-0142"},
                )
            ]
        ),
    ],
) -> Erasure:
    """Erase, then scrub the erased bytes from the store's files."""
    principal = request.user
    tenant = tenant_of(principal)
    ledger = services.ledger
    if (data.position is None) == (data.msisdn is None):
        raise InvalidInput("name what to erase: position or msisdn")
    if data.position is not None:
        return erase_position(
            ledger, tenant, data.position, reason=data.reason, actor=principal.actor
        )
    assert data.msisdn is not None
    number = ledger.normalize_msisdn(tenant, data.subaccount, data.msisdn)
    return erase_number(ledger, tenant, number, reason=data.reason, actor=principal.actor)


ROUTES = [post_erasure]
