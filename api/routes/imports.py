"""``POST /v1/imports``: import a suppression list over HTTP (docs/adopting.md).

Guarantees: the rules are those of ``projections.imports`` (the CLI's ``import`` follows the
same); the body is streamed to a private temporary file (deleted afterwards), never held in
memory, and refused (413, nothing recorded) past ``Settings.max_import_bytes``; the answer is the
import's summary with the rejected rows (the first ``MAX_LISTED``; ``rejected`` counts them
all).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from api.auth import tenant_of
from api.keys import Principal
from api.problems import problem
from api.state import Services
from projections.import_rows import parse_mapping
from projections.imports import (
    ImportOptions,
    ImportSummary,
    Rejected,
    SourceFile,
    Spool,
    TooLarge,
    file_format,
    import_file,
)

MAX_LISTED = 10_000
"""Rejected rows listed in an answer at most (all are counted)."""


class ImportAnswer(ImportSummary, frozen=True, kw_only=True):
    """The import's summary and its rejected rows (line, column, reason)."""

    rejected_rows: list[Rejected]
    rejected_rows_listed: int
    """How many of the rejected rows are listed (at most 10,000)."""


_EXAMPLE = {
    "file": "old-platform.csv",
    "sha256": "1fe5789ec0ddd4be47426faab54847e7db778f04a1dddbc843e97c7c6a0f4403",
    "format": "csv",
    "rows_read": 3,
    "valid": 2,
    "recorded": 2,
    "duplicates": 0,
    "queued_for_review": 0,
    "rejected": 1,
    "dry_run": False,
    "log_position": 42,
    "rejected_rows": [{"row": 4, "column": "msisdn", "reason": "'n/a' is not a phone number"}],
    "rejected_rows_listed": 1,
}


@post(
    "/v1/imports",
    opt={"scope": "admin"},
    status_code=200,
    request_max_body_size=None,  # streamed to a file; the limit is Settings.max_import_bytes
    tags=["admin"],
    summary="Import a suppression list (CSV, TSV or JSON lines)",
    description="The body is the file: CSV or TSV with a header (msisdn required; subaccount, "
    "action, occurred_at, source, text, notice), a headerless list of numbers (opt-outs), or "
    "JSON lines; the format comes from `format`, else `name`'s extension, the content type or "
    "the first line. Each good row records one entry with method `import` (its evidence names "
    "the file's name and SHA-256, the row's line and the row as read); importing again records "
    "nothing twice. An imported opt-in that would re-allow a number opted out through the "
    "ledger is held for review (resolution `accept`). Bad rows are listed, never stop the "
    "others (`strict`: record nothing unless all are good, 422). Larger than the configured "
    "limit (50 MiB by default): 413, nothing recorded.",
    responses={
        200: ResponseSpec(
            data_container=ImportAnswer,
            description="What the import did",
            examples=[Example(summary="Two opt-outs recorded, one row rejected", value=_EXAMPLE)],
        )
    },
)
async def post_import(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    name: Annotated[
        str, QueryParameter(description="The file's name, kept in the evidence")
    ] = "upload",
    fmt: Annotated[
        Literal["csv", "tsv", "jsonl"] | None,
        QueryParameter(name="format", description="csv, tsv or jsonl"),
    ] = None,
    subaccount: Annotated[
        str | None, QueryParameter(description="Subaccount of rows naming none")
    ] = None,
    tenant_wide: Annotated[
        bool, QueryParameter(description="Rows naming no subaccount: every one")
    ] = False,
    mapping: Annotated[
        list[str] | None, QueryParameter(name="map", description="file_column=field (repeatable)")
    ] = None,
    as_of: Annotated[
        str | None, QueryParameter(description="Date of rows without one (opt-outs)")
    ] = None,
    timezone: Annotated[
        str | None, QueryParameter(description="Zone of dates and local times")
    ] = None,
    region: Annotated[str | None, QueryParameter(description="Region of national numbers")] = None,
    strict: Annotated[
        bool, QueryParameter(description="Record nothing unless every row is good")
    ] = False,
    dry_run: Annotated[bool, QueryParameter(description="Check every row, record nothing")] = False,
) -> ImportAnswer:
    """Spool the body, then import it off the event loop."""
    principal = request.user
    tenant = tenant_of(principal)
    columns = parse_mapping(mapping or [])
    limit = services.settings.max_import_bytes
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise problem(413, f"the import is larger than {limit:,} bytes; split it")
    spooled = Spool(name, limit)
    try:
        async for chunk in request.stream():
            spooled.write(chunk)
    except TooLarge as exc:
        raise problem(413, f"{exc}; split it") from exc
    except BaseException:
        spooled.discard()
        raise
    source = spooled.finish()
    options = ImportOptions(
        tenant=tenant,
        recorded_by=principal.actor,
        subaccount=subaccount,
        tenant_wide=tenant_wide,
        as_of=as_of,
        timezone=timezone,
        region=region,
        strict=strict,
        dry_run=dry_run,
        key_id=principal.key_id,
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    content_type = request.headers.get("content-type")
    try:
        return await services.write(_run, services, source, fmt, content_type, options, columns)
    finally:
        source.path.unlink(missing_ok=True)


def _run(
    services: Services,
    source: SourceFile,
    fmt: str | None,
    content_type: str | None,
    options: ImportOptions,
    columns: dict[str, str],
) -> ImportAnswer:
    listed: list[Rejected] = []

    def rejected(item: Rejected) -> None:
        if len(listed) < MAX_LISTED:
            listed.append(item)

    summary = import_file(
        services.ledger,
        source,
        file_format(source, fmt, content_type),
        options,
        mapping=columns,
        rejected=rejected,
    )
    return ImportAnswer(
        **{f: getattr(summary, f) for f in ImportSummary.__struct_fields__},
        rejected_rows=listed,
        rejected_rows_listed=len(listed),
    )


ROUTES = [post_import]
