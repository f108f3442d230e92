"""``GET /v1/suppression/{subaccount}``: a subaccount's suppression list, streamed
(docs/adopting.md).

Guarantees: the list is ``projections.exports.suppression_list`` (the CLI's ``export`` gives the
same), as known at the log position in ``X-Log-Position``; it is streamed a page at a time, never
built in memory; subaccount ``*`` gives the numbers every subaccount must not send to (for 8x8's
account-wide blacklist).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from api.auth import tenant_of
from api.keys import Principal
from api.state import Services
from projections.exports import SUPPRESSED_COLUMNS, Export, csv_row, export_point, suppression_list
from projections.ids import valid_subaccount
from projections.ledger import ConsentLedger

_ROWS_PER_CHUNK = 1000


@get(
    "/v1/suppression/{subaccount:str}",
    opt={"scope": "audit", "media_types": {200: ("text/csv", "application/x-ndjson")}},
    sync_to_thread=True,
    tags=["suppression"],
    summary="The suppression list of a subaccount (streamed)",
    description="Every number this subaccount must not send to at `at` (default now), "
    "tenant-wide opt-outs included, with the deciding position, keyword, method and time: CSV "
    "(`msisdn,scope,position,keyword,method,occurred_at`, the default) or JSON lines "
    "(`format=jsonl`). Subaccount `*`: the numbers every subaccount must not send to (a "
    "subaccount's own opt-out never blocks the others), the list for 8x8's account-wide "
    "blacklist. Numbers in `unknown` state are not listed. `X-Log-Position` names the log "
    "position the list is as known at.",
)
def get_suppression(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    subaccount: Annotated[str, PathParameter(description="A subaccount id, or * for all")],
    at: Annotated[
        str | None,
        QueryParameter(description="Valid time: RFC 3339 with an offset, or a date (00:00Z)"),
    ] = None,
    fmt: Annotated[
        Literal["csv", "jsonl"], QueryParameter(name="format", description="csv or jsonl")
    ] = "csv",
) -> Stream:
    """Stream the list."""
    tenant = tenant_of(request.user)
    named = None if subaccount == "*" else subaccount
    if named is not None:
        valid_subaccount(named)
    ledger = services.ledger
    point = export_point(ledger, tenant, at)
    chunks = _csv(ledger, point, named) if fmt == "csv" else _jsonl(ledger, point, named)
    return Stream(
        chunks,
        media_type="text/csv" if fmt == "csv" else "application/x-ndjson",
        headers={"X-Log-Position": str(point.known_at)},
    )


def _csv(ledger: ConsentLedger, point: Export, subaccount: str | None) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUPPRESSED_COLUMNS)
    for n, number in enumerate(suppression_list(ledger, point, subaccount), 1):
        writer.writerow(csv_row(number))
        if n % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _jsonl(ledger: ConsentLedger, point: Export, subaccount: str | None) -> Iterator[bytes]:
    encode = msgspec.json.encode
    lines: list[bytes] = []
    for number in suppression_list(ledger, point, subaccount):
        lines.append(encode(number) + b"\n")
        if len(lines) >= _ROWS_PER_CHUNK:
            yield b"".join(lines)
            lines = []
    yield b"".join(lines)


ROUTES = [get_suppression]
