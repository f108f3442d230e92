"""Evidence bundles over HTTP: one self-contained, offline-verifiable document per number.

Guarantees: each request signs a checkpoint on demand (unless the newest one already covers the
newest entry: then the request only reads, and never waits for a writer), so the bundle covers
everything logged before it; the bundle holds only the key's tenant's entries (another
tenant's number gives a bundle with no entries of theirs, as if the number had none);
``format=html`` renders the same bundle for printing. Nothing here appends to the log. Verify
a bundle with ``consent-ledger verify-bundle FILE --key KEY``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from api.bundle_html import render_html
from api.keys import Principal
from api.routes.consent import MSISDN, SUBACCOUNT
from api.routes.log import signer_or_503
from api.state import Services
from api.subject import subject_of
from projections.evidence import STATEMENT, Bundle, build_bundle

TAGS = ["evidence"]
PAGE = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
"""Headers of the HTML page: it may use its inline styles and nothing else (no script, no
fetch), and is never read as another type than it says."""

# A real bundle (a throwaway key: bytes 0..31 as the Ed25519 private key); it verifies.
EXAMPLE_BUNDLE: dict[str, Any] = {
    "format": "consent-ledger-evidence/1",
    "statement": STATEMENT,
    "tenant": "default",
    "subaccount": "ACME_MKT",
    "msisdn": "+6581968289",
    "generated_at": "2026-06-01T10:00:00.150Z",
    "decision": {
        "allowed": False,
        "state": "opted_out",
        "reason": (
            "opted out by STOP for this subaccount at 2026-03-02T09:15:27.431Z (position 2)"
        ),
        "decided_by": {
            "position": 2,
            "event_id": "812b9cfa-6b11-4c9e-9c41-9893650e44fe",
            "type": "consent.revoked",
            "occurred_at": "2026-03-02T09:15:27.431Z",
            "keyword": "STOP",
        },
        "subaccount_known": True,
        "at": "2026-06-01T10:00:00.150Z",
        "known_at": 2,
    },
    "timeline": [
        {
            "from": "2026-03-02T09:15:27.431Z",
            "to": None,
            "state": "opted_out",
            "position": 2,
            "scope": "subaccount",
        },
    ],
    "checkpoint": {
        "origin": "consent-ledger",
        "size": 2,
        "root": "fXDWl2YgfFelRULyg3pFt30O6guaT44BgZkgrEJORiY=",
        "note": (
            "consent-ledger\n2\nfXDWl2YgfFelRULyg3pFt30O6guaT44BgZkgrEJORiY=\n\n—"
            " consent-ledger u7+VewUor4mhkw8t7MLi3Bbk6x0JJNSvwz5U1VAAvocA2e+O"
            "+imbs7D6IFkufMp2mQ70L9B2rtz+aG8c/Vy+NDU5dgw=\n"
        ),
        "verifier_key": ("consent-ledger+bbbf957b+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"),
    },
    "entries": [
        {
            "position": 1,
            "role": "configuration",
            "leaf_hash": "yMOTMEOlJ9K8KEq7FJBnX9w0pfo1omWC2G7tvI/NeHM=",
            "bytes": (
                "eyJ2IjoxLCJwb3NpdGlvbiI6MSwiZXZlbnRfaWQiOiI3MzhjYjUyZi1lYTg0LTQw"
                "ZjctOGU1YS1kZDU0ODEzNDZmY2MiLCJrZXkiOiJjb25maWc6OTk4NjlhZTQtOTNk"
                "NC00MzlhLTljYTctZjRjZDk5ZTViMjZlIiwidGVuYW50IjoiZGVmYXVsdCIsInN1"
                "YmFjY291bnQiOiJBQ01FX01LVCIsIm1zaXNkbiI6bnVsbCwidHlwZSI6InN1YmFj"
                "Y291bnQuY29uZmlndXJlZCIsIm9jY3VycmVkX2F0IjoiMjAyNi0wMy0wMVQwODow"
                "MDowMC4wNTBaIiwicmVjb3JkZWRfYXQiOiIyMDI2LTAzLTAxVDA4OjAwOjAwLjA1"
                "MFoiLCJldmVudCI6eyJ0eXBlIjoic3ViYWNjb3VudC5jb25maWd1cmVkIiwiZGVm"
                "YXVsdF9yZWdpb24iOiJTRyIsIm1vZGUiOiJzdGFuZGFyZCIsInVua25vd24iOiJh"
                "bGxvdyIsImtleXdvcmRzIjp7ImFkZCI6e30sInJlbW92ZSI6e319LCJwb2xpY3lf"
                "dmVyc2lvbiI6MSwiYWN0b3IiOiJhZG1pbjpvcHNAYWNtZS5leGFtcGxlIiwibWV0"
                "aG9kIjoiYWRtaW4ifSwiZXZpZGVuY2VfZGlnZXN0IjpudWxsfQ=="
            ),
            "entry": {
                "v": 1,
                "position": 1,
                "event_id": "738cb52f-ea84-40f7-8e5a-dd5481346fcc",
                "key": "config:99869ae4-93d4-439a-9ca7-f4cd99e5b26e",
                "tenant": "default",
                "subaccount": "ACME_MKT",
                "msisdn": None,
                "type": "subaccount.configured",
                "occurred_at": "2026-03-01T08:00:00.050Z",
                "recorded_at": "2026-03-01T08:00:00.050Z",
                "event": {
                    "type": "subaccount.configured",
                    "default_region": "SG",
                    "mode": "standard",
                    "unknown": "allow",
                    "keywords": {
                        "add": {},
                        "remove": {},
                    },
                    "policy_version": 1,
                    "actor": "admin:ops@acme.example",
                    "method": "admin",
                },
                "evidence_digest": None,
            },
            "inclusion_proof": [
                "93lr9u3GsP0ztLfvKBwm/wvQihxxmNS8LwyAVjK/ccU=",
            ],
            "evidence": None,
        },
        {
            "position": 2,
            "role": "number",
            "leaf_hash": "93lr9u3GsP0ztLfvKBwm/wvQihxxmNS8LwyAVjK/ccU=",
            "bytes": (
                "eyJ2IjoxLCJwb3NpdGlvbiI6MiwiZXZlbnRfaWQiOiI4MTJiOWNmYS02YjExLTRj"
                "OWUtOWM0MS05ODkzNjUwZTQ0ZmUiLCJrZXkiOiI4eDg6M2IxZjZjMmUtN2Q0YS01"
                "ZThiLTljMTAtMmYzYTRiNWM2ZDdlIiwidGVuYW50IjoiZGVmYXVsdCIsInN1YmFj"
                "Y291bnQiOiJBQ01FX01LVCIsIm1zaXNkbiI6Iis2NTgxOTY4Mjg5IiwidHlwZSI6"
                "ImNvbnNlbnQucmV2b2tlZCIsIm9jY3VycmVkX2F0IjoiMjAyNi0wMy0wMlQwOTox"
                "NToyNy40MzFaIiwicmVjb3JkZWRfYXQiOiIyMDI2LTAzLTAyVDA5OjE1OjI4LjEw"
                "MFoiLCJldmVudCI6eyJ0eXBlIjoiY29uc2VudC5yZXZva2VkIiwic2NvcGUiOiJz"
                "dWJhY2NvdW50Iiwia2V5d29yZCI6IlNUT1AiLCJtYXRjaCI6ImV4YWN0IiwicG9s"
                "aWN5IjoiQUNNRV9NS1RAMSIsImNoYW5uZWwiOiJzbXMiLCJtZXRob2QiOiI4eDgt"
                "d2ViaG9vayIsImFjdG9yIjoiZGF0YS1zdWJqZWN0In0sImV2aWRlbmNlX2RpZ2Vz"
                "dCI6IjM2emJyWWJsQmJkeGZPOU16ZFh2c1hONGllc2s4YysrNXhza2NrQVl5dWM9"
                "In0="
            ),
            "entry": {
                "v": 1,
                "position": 2,
                "event_id": "812b9cfa-6b11-4c9e-9c41-9893650e44fe",
                "key": "8x8:3b1f6c2e-7d4a-5e8b-9c10-2f3a4b5c6d7e",
                "tenant": "default",
                "subaccount": "ACME_MKT",
                "msisdn": "+6581968289",
                "type": "consent.revoked",
                "occurred_at": "2026-03-02T09:15:27.431Z",
                "recorded_at": "2026-03-02T09:15:28.100Z",
                "event": {
                    "type": "consent.revoked",
                    "scope": "subaccount",
                    "keyword": "STOP",
                    "match": "exact",
                    "policy": "ACME_MKT@1",
                    "channel": "sms",
                    "method": "8x8-webhook",
                    "actor": "data-subject",
                },
                "evidence_digest": "36zbrYblBbdxfO9MzdXvsXN4iesk8c++5xskckAYyuc=",
            },
            "inclusion_proof": [
                "yMOTMEOlJ9K8KEq7FJBnX9w0pfo1omWC2G7tvI/NeHM=",
            ],
            "evidence": {
                "status": "kept",
                "salt": "mAyum3nn8axUy0OMAX0Iyg==",
                "content": (
                    "eyJyYXdfYm9keSI6IntcIm5hbWVzcGFjZVwiOlwiU01TXCIsXCJldmVudFR5cGVc"
                    "IjpcImluYm91bmRfbWVzc2FnZV9yZWNlaXZlZFwiLFwicGF5bG9hZFwiOntcInVt"
                    "aWRcIjpcIjNiMWY2YzJlLTdkNGEtNWU4Yi05YzEwLTJmM2E0YjVjNmQ3ZVwiLFwi"
                    "c3ViQWNjb3VudElkXCI6XCJBQ01FX01LVFwiLFwidGltZXN0YW1wXCI6XCIyMDI2"
                    "LTAzLTAyVDA5OjE1OjI3LjQzMVpcIixcInNvdXJjZVwiOlwiKzY1ODE5NjgyODlc"
                    "IixcImJvZHlcIjpcIlNUT1BcIn19IiwidGV4dCI6IlNUT1AiLCJyZW1vdGVfYWRk"
                    "ciI6IjIwMy4wLjExMy43IiwicmVxdWVzdF9pZCI6InJlcS01ZjJjIiwiY29udGVu"
                    "dF90eXBlIjoiYXBwbGljYXRpb24vanNvbiJ9"
                ),
                "decoded": {
                    "raw_body": (
                        '{"namespace":"SMS","eventType":"inbound_message_received","paylo'
                        'ad":{"umid":"3b1f6c2e-7d4a-5e8b-9c10-2f3a4b5c6d7e","subAccountId'
                        '":"ACME_MKT","timestamp":"2026-03-02T09:15:27.431Z","source":"+6'
                        '581968289","body":"STOP"}}'
                    ),
                    "text": "STOP",
                    "remote_addr": "203.0.113.7",
                    "request_id": "req-5f2c",
                    "content_type": "application/json",
                },
                "note": None,
            },
        },
    ],
}


@get(
    "/v1/evidence/{subaccount:str}/{msisdn:str}",
    opt={"scope": "audit", "media_types": {200: ("text/html",)}},
    sync_to_thread=True,
    tags=TAGS,
    summary="An offline-verifiable evidence bundle for a number and subaccount",
    description="One self-contained JSON document (`format: consent-ledger-evidence/1`), made "
    "against a checkpoint signed now so that it covers the newest entry: every entry bearing on "
    "the number for this subaccount (its own, tenant-wide and unresolved opt-outs, the "
    "retractions and review resolutions targeting them, and the subaccount's and tenant's "
    "configuration entries), each as stored bytes (base64) and decoded, with its RFC 9162 "
    "inclusion proof at the checkpoint's tree size and its evidence (salt and content, or a "
    "note that it was erased); the signed checkpoint and verifier key; and the decision and "
    "timeline as known at the checkpoint's size, for valid time `generated_at`. The proofs "
    "show that these entries are in the log, not that no other entry exists. Verify offline "
    "with `consent-ledger verify-bundle FILE --key VERIFIER_KEY`. `format=html` gives a "
    "printable page of the same bundle.",
    responses={
        200: ResponseSpec(
            data_container=Bundle,
            description="The bundle (JSON; or a printable HTML page with format=html)",
            # a Bundle, not a dict: litestar drops None values from dict examples, and a
            # bundle without its nulls would not verify
            examples=[
                Example(summary="A STOP by SMS", value=msgspec.convert(EXAMPLE_BUNDLE, Bundle))
            ],
        )
    },
)
def evidence_bundle(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    subaccount: Annotated[str, SUBACCOUNT],
    msisdn: Annotated[str, MSISDN],
    fmt: Annotated[
        Literal["json", "html"],
        QueryParameter(name="format", description="json (default) or html (printable)"),
    ] = "json",
) -> Response[Any]:
    """The evidence bundle of one number for one subaccount, as JSON or printable HTML."""
    ledger = services.ledger
    tenant, number = subject_of(request.user, ledger, subaccount, msisdn)
    signer = signer_or_503(services, "evidence")
    bundle = build_bundle(ledger, signer, services.settings.origin, tenant, subaccount, number)
    headers = {"X-Checkpoint-Size": str(bundle.checkpoint.size)}
    if fmt == "html":
        return Response(render_html(bundle), media_type=MediaType.HTML, headers=headers | PAGE)
    return Response(bundle, headers=headers)


ROUTES = [evidence_bundle]
