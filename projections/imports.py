"""Importing suppression lists: one rule for ``consent-ledger import`` and ``POST /v1/imports``
(docs/adopting.md).

Guarantees:
- each good row becomes one entry with method ``import``, whose evidence names the file (name,
  SHA-256), the row's line number and the row as read;
- idempotent: an entry's key is a digest of (tenant, subaccount or ``*``, E.164 number, action,
  canonical occurred time), never of the file, so importing the same file again, or an
  overlapping one, records nothing twice, and rows repeated inside a file count once;
- when in doubt, suppress: imported opt-outs always apply; an imported opt-in whose number is
  opted out, at the opt-in's own time, by an entry recorded through the ledger (not imported) is
  held for review (a ``review.flagged`` entry; the resolution ``accept`` records it); that check
  reads inside the append's write transaction, so no opt-out slips in between; an opt-in row
  without its own date, or for every subaccount, is refused;
- a bad row never stops the good ones: it is reported (line, column, reason) and counted;
  ``strict`` checks every row first and records nothing unless all are good; ``dry_run``
  checks and records nothing;
- streamed in bounded batches, each one atomic append: memory does not grow with the file and
  other appends (webhooks) get the write lock between batches. A batch read under
  configuration that changed before it was written is read again (``Stale``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ledger.entries import MAX_KEPT_TEXT, Evidence, ImportOrigin
from ledger.errors import InvalidInput, InvalidTime, Stale
from ledger.events import ConsentGranted, ConsentRevoked, Event, ReviewFlagged
from ledger.keywords import Classification, Policy
from ledger.msisdn import to_e164, valid_region
from ledger.store import Appended, Draft, Unchanged
from ledger.timefmt import FUTURE_TOLERANCE, format_time, parse_time
from projections.config import SubaccountSettings
from projections.ids import is_subaccount_id
from projections.import_rows import Format, Row, detect_format, read_rows
from projections.ledger import ConsentLedger
from projections.read_model import ReadView

Action = Literal["opt_out", "opt_in"]
TENANT_WIDE = "*"
"""The subaccount value of a row for every subaccount of the tenant."""
BATCH_ROWS = 500
"""Rows appended per batch (one atomic append, one write-lock hold): small enough that live
webhooks wait little for the lock, large enough that a commit serves many rows."""
MAX_FIELD = 256
"""Longest ``source`` or ``notice`` kept, in characters."""
ATTEMPTS = 5
"""How often a batch is read again when configuration changed under it."""
CONFIGURATION_TYPES = ("subaccount.configured", "tenant.configured")
SUBJECT = "data-subject"
_ACTIONS: dict[str, Action] = {
    "": "opt_out",
    "opt_out": "opt_out",
    "optout": "opt_out",
    "out": "opt_out",
    "opt_in": "opt_in",
    "optin": "opt_in",
    "in": "opt_in",
}
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to read the rows of one import (the CLI's options, the API's query parameters)."""

    tenant: str
    recorded_by: str
    """Who ran the import (``cli:<user>``, ``key:<id>``), kept in every entry."""
    subaccount: str | None = None
    """The subaccount of rows that name none."""
    tenant_wide: bool = False
    """Rows that name no subaccount apply to every subaccount (as ``*`` does)."""
    as_of: str | None = None
    """The date of rows without one (opt-outs only; the evidence says it was assumed)."""
    timezone: str | None = None
    """IANA zone of bare dates and local times (else a date is 00:00Z, a local time refused)."""
    region: str | None = None
    """Region of national numbers where the subaccount has none (and of tenant-wide rows)."""
    strict: bool = False
    dry_run: bool = False
    batch_rows: int = BATCH_ROWS
    key_id: str | None = None
    request_id: str | None = None
    host: str | None = None


class Rejected(msgspec.Struct, frozen=True):
    """A row that was not recorded: its line number, the column at fault (if one) and why."""

    row: int
    column: str | None
    reason: str


class ImportSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one import did (``recorded``, ``duplicates`` and ``queued_for_review`` stay 0 in a
    dry run; ``valid`` counts the rows that would be recorded or are already)."""

    file: str
    sha256: str
    format: Format
    rows_read: int
    valid: int
    recorded: int
    duplicates: int
    queued_for_review: int
    rejected: int
    dry_run: bool
    log_position: int


class SourceFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file to import: where it is (seekable), the name its evidence names, its SHA-256 and
    size."""

    path: Path
    name: str
    sha256: str
    size: int


class RowRefused(InvalidInput):
    """A row ``strict`` refused: nothing was recorded."""

    def __init__(self, rejected: Rejected) -> None:
        self.rejected = rejected
        where = f", column {rejected.column}" if rejected.column else ""
        super().__init__(f"row {rejected.row}{where}: {rejected.reason} (nothing was recorded)")


def source_file(path: Path, name: str | None = None) -> SourceFile:
    """``path`` as a source file (its SHA-256 read in one streaming pass)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return SourceFile(
        path=path, name=name or path.name, sha256=digest.hexdigest(), size=path.stat().st_size
    )


class TooLarge(InvalidInput):
    """An import body larger than the limit."""


class Spool:
    """A private temporary file that streamed bytes (stdin, a request body) are written to while
    they are hashed, so the import can read them as a file (its SHA-256 named in every entry's
    evidence). ``TooLarge`` past ``limit`` bytes, and the file is deleted; the caller deletes
    the finished file's ``path``."""

    def __init__(self, name: str, limit: int | None = None) -> None:
        self.name, self.limit, self.size = name, limit, 0
        self._digest = hashlib.sha256()
        self._handle = tempfile.NamedTemporaryFile(prefix="consent-import-", delete=False)  # noqa: SIM115
        self.path = Path(self._handle.name)

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``."""
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.discard()
            raise TooLarge(f"the import is larger than {self.limit:,} bytes")
        self._digest.update(chunk)
        self._handle.write(chunk)

    def finish(self) -> SourceFile:
        """The file written, ready to import."""
        self._handle.close()
        return SourceFile(
            path=self.path, name=self.name, sha256=self._digest.hexdigest(), size=self.size
        )

    def discard(self) -> None:
        """Delete what was written."""
        self._handle.close()
        self.path.unlink(missing_ok=True)


def spool(chunks: Iterable[bytes], name: str, limit: int | None = None) -> SourceFile:
    """``chunks`` written to a ``Spool`` (see there)."""
    spooled = Spool(name, limit)
    try:
        for chunk in chunks:
            spooled.write(chunk)
    except BaseException:
        spooled.discard()
        raise
    return spooled.finish()


def file_format(source: SourceFile, given: str | None, content_type: str | None = None) -> Format:
    """``given`` when named, else the format detected from the name and first bytes."""
    if given is not None:
        if given not in ("csv", "tsv", "jsonl"):
            raise InvalidInput("the format must be csv, tsv or jsonl")
        return given  # type: ignore[return-value]
    with source.path.open("rb") as handle:
        head = handle.read(4096)
    return detect_format(source.name, head, content_type)


def import_file(
    ledger: ConsentLedger,
    source: SourceFile,
    fmt: Format,
    options: ImportOptions,
    *,
    mapping: dict[str, str] | None = None,
    rejected: Callable[[Rejected], None] = lambda _: None,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Import every row of ``source`` (see the module guarantees); ``rejected`` is called for
    each bad row as it is found, ``progress`` with the bytes read so far."""
    context = _Context(ledger, options)
    if options.strict:
        _check_all(context, source, fmt, mapping, rejected)
    counts = _Counts()
    with source.path.open("rb") as stream:
        for batch in _batches(read_rows(stream, fmt, mapping), options.batch_rows):
            _import_batch(context, source, batch, counts, rejected)
            progress(stream.tell())
    return ImportSummary(
        file=source.name,
        sha256=source.sha256,
        format=fmt,
        rows_read=counts.read,
        valid=counts.valid,
        recorded=counts.recorded,
        duplicates=counts.duplicates,
        queued_for_review=counts.queued,
        rejected=counts.rejected,
        dry_run=options.dry_run,
        log_position=ledger.head(),
    )


def read_drafts(
    ledger: ConsentLedger,
    source: SourceFile,
    fmt: Format,
    options: ImportOptions,
    mapping: dict[str, str] | None = None,
) -> Iterator[Draft | Rejected]:
    """What each row of ``source`` would append (before the review check made inside the
    append), or why it would be rejected; nothing is written (the benchmark's baseline)."""
    context = _Context(ledger, options)
    with source.path.open("rb") as stream:
        for batch in _batches(read_rows(stream, fmt, mapping), options.batch_rows):
            context.refresh()
            for row in batch:
                yield _draft(context, source, row)


def import_key(
    tenant: str, subaccount: str | None, msisdn: str, action: str, occurred_at: str
) -> str:
    """The idempotency key of an imported row: a digest of what it records, not of its file."""
    text = "\0".join((tenant, subaccount or TENANT_WIDE, msisdn, action, occurred_at))
    return "import:" + hashlib.sha256(text.encode()).hexdigest()


# -- internals ----------------------------------------------------------------------------------


class _Counts:
    def __init__(self) -> None:
        self.read = self.valid = self.recorded = self.duplicates = self.queued = self.rejected = 0


class _Context:
    """What reading rows needs: the options, checked once, and the settings of each subaccount
    (read afresh for every batch)."""

    def __init__(self, ledger: ConsentLedger, options: ImportOptions) -> None:
        if options.subaccount is not None and options.tenant_wide:
            raise InvalidInput("give either a subaccount or tenant-wide, not both")
        if options.subaccount is not None and not is_subaccount_id(options.subaccount):
            raise InvalidInput(f"{options.subaccount!r} is not a subaccount id")
        if options.batch_rows < 1:
            raise InvalidInput("a batch holds at least one row")
        self.ledger = ledger
        self.options = options
        self.zone = _zone(options.timezone)
        self.region = valid_region(options.region) if options.region else None
        self.as_of = _time(options.as_of, self.zone, "--as-of") if options.as_of else None
        self.settings: dict[str, SubaccountSettings | None] = {}
        self.revoke_all = False
        self.tenant_region: str | None = None
        self.read_at = 0
        self.now = ""

    def refresh(self) -> None:
        """Forget the settings read for the previous batch; note the log position read at."""
        ledger, tenant = self.ledger, self.options.tenant
        self.read_at = ledger.head()  # before any setting is read
        self.settings.clear()
        self.revoke_all = ledger.revoke_all(tenant)
        self.tenant_region = ledger.tenant_region(tenant)
        self.now = format_time(ledger.clock())

    def subaccount(self, name: str) -> SubaccountSettings | None:
        if name not in self.settings:
            self.settings[name] = self.ledger.settings(self.options.tenant, name)
        return self.settings[name]


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_all(
    context: _Context,
    source: SourceFile,
    fmt: Format,
    mapping: dict[str, str] | None,
    rejected: Callable[[Rejected], None],
) -> None:
    """``strict``: read every row first; the first bad one is reported and refuses the import."""
    with source.path.open("rb") as stream:
        for batch in _batches(read_rows(stream, fmt, mapping), context.options.batch_rows):
            context.refresh()
            for row in batch:
                found = _draft(context, source, row)
                if isinstance(found, Rejected):
                    rejected(found)
                    raise RowRefused(found)


def _import_batch(
    context: _Context,
    source: SourceFile,
    batch: list[Row],
    counts: _Counts,
    rejected: Callable[[Rejected], None],
) -> None:
    """Read one batch into drafts and append them as one atomic unit (read again on
    ``Stale``)."""
    for attempt in range(ATTEMPTS):
        context.refresh()
        drafts: list[Draft] = []
        refused: list[Rejected] = []
        for row in batch:
            found = _draft(context, source, row)
            (refused if isinstance(found, Rejected) else drafts).append(found)  # type: ignore[arg-type]
        if context.options.dry_run or not drafts:
            break
        guard = Unchanged(
            tenant=context.options.tenant, types=CONFIGURATION_TYPES, position=context.read_at
        )
        drafts[0] = msgspec.structs.replace(drafts[0], unchanged=guard)
        try:
            appended = context.ledger.decide_and_append(_holding(drafts))
        except Stale:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        _count(appended, counts)
        break
    counts.read += len(batch)
    counts.valid += len(drafts)
    counts.rejected += len(refused)
    for item in refused:
        rejected(item)


def _count(appended: Sequence[Appended], counts: _Counts) -> None:
    for result in appended:
        if result.duplicate:
            counts.duplicates += 1
        elif result.stored.entry.type == "review.flagged":
            counts.queued += 1
        else:
            counts.recorded += 1


def _holding(drafts: list[Draft]) -> Callable[[ReadView], list[Draft]]:
    return lambda view: _hold_opt_ins(view, drafts)


def _hold_opt_ins(view: ReadView, drafts: list[Draft]) -> list[Draft]:
    """``drafts`` with every opt-in that would re-allow a number opted out through the ledger
    replaced by a review item holding it (read inside the append's write transaction)."""
    head = view.head()
    out = []
    for draft in drafts:
        event = draft.event
        if isinstance(event, ConsentGranted) and draft.subaccount and draft.msisdn:
            assert draft.occurred_at is not None
            decided = view.decide(
                draft.tenant, draft.subaccount, draft.msisdn, draft.occurred_at, head
            )
            by = decided.decided_by
            if decided.state == "opted_out" and by is not None:
                method = _method(view, by.position)
                if method != "import":
                    draft = msgspec.structs.replace(draft, event=_held(event, by.position, method))
        out.append(draft)
    return out


def _method(view: ReadView, position: int) -> str | None:
    entries = view.entries_at([position])
    return getattr(entries[0].entry.event, "method", None) if entries else None


def _held(event: ConsentGranted, position: int, method: str | None) -> ReviewFlagged:
    return ReviewFlagged(
        keyword=event.keyword,
        match=event.match,
        policy=event.policy,
        channel=event.channel,
        method="import",
        actor=event.actor,
        reason=(
            f"an imported opt-in would re-allow a number opted out through the ledger "
            f"({method}, position {position}); accept records it, dismiss drops it"
        ),
        recorded_by=event.recorded_by,
        withheld="opt_in",
        notice_version=event.notice_version,
    )


def _draft(context: _Context, source: SourceFile, row: Row) -> Draft | Rejected:
    """The entry one row records, or why it is rejected."""
    if row.error is not None:
        return Rejected(row.line, row.column, row.error)
    try:
        return _entry(context, source, row)
    except _Bad as bad:
        return Rejected(row.line, bad.column, str(bad))


class _Bad(Exception):
    def __init__(self, column: str | None, reason: str) -> None:
        self.column = column
        super().__init__(reason)


def _entry(context: _Context, source: SourceFile, row: Row) -> Draft:
    values, options = row.values, context.options
    raw_number = values.get("msisdn", "")
    if not raw_number:
        raise _Bad("msisdn", "msisdn is missing")
    action = _ACTIONS.get(values.get("action", "").lower().replace("-", "_").replace(" ", "_"))
    if action is None:
        raise _Bad("action", f"action {values['action']!r} is not opt_out or opt_in")
    named = values.get("subaccount", "")
    wide = named == TENANT_WIDE or (not named and options.tenant_wide)
    subaccount = None if wide else (named or options.subaccount)
    settings = None
    if subaccount is None and not wide:
        raise _Bad(
            "subaccount",
            "no subaccount: name one in the row or give a default subaccount (or * for every "
            "subaccount)",
        )
    if subaccount is not None:
        settings = context.subaccount(subaccount) if is_subaccount_id(subaccount) else None
        if settings is None:
            raise _Bad(
                "subaccount",
                f"subaccount {subaccount[:64]!r} is not known: register it first, or use * for "
                "every subaccount",
            )
    if wide and action == "opt_in":
        raise _Bad("subaccount", "an opt-in names one subaccount, never every subaccount (*)")
    region = (
        (settings.default_region if settings else None) or context.region or context.tenant_region
    )
    try:
        msisdn = to_e164(raw_number, region)
    except InvalidInput as exc:
        raise _Bad("msisdn", str(exc)) from exc
    occurred, assumed = _occurred(context, values.get("occurred_at", ""), action)
    text = values.get("text") or None
    policy = settings.policy if settings else Policy()
    found = policy.classify(text) if text is not None else None
    if action == "opt_in" and found is not None and found.action in ("opt_out", "review"):
        raise _Bad(
            "text", f"the text reads as an opt-out (keyword {found.keyword}); an opt-in is refused"
        )
    notice = _capped(values.get("notice"), "notice")
    event = _event(context, action, wide, found, policy, notice)
    return Draft(
        tenant=options.tenant,
        key=import_key(options.tenant, subaccount, msisdn, action, occurred),
        subaccount=subaccount,
        msisdn=msisdn,
        occurred_at=occurred,
        event=event,
        evidence=Evidence(
            raw_body=row.raw,
            text=text[:MAX_KEPT_TEXT] if text else None,
            recorded_by=options.recorded_by if options.key_id is None else None,
            key_id=options.key_id,
            request_id=options.request_id,
            host=options.host,
            content_type=None,
            imported=ImportOrigin(
                file=source.name,
                sha256=source.sha256,
                row=row.line,
                source=_capped(values.get("source"), "source"),
                date_assumed=occurred if assumed else None,
            ),
        ),
    )


def _event(
    context: _Context,
    action: Action,
    wide: bool,
    found: Classification | None,
    policy: Policy,
    notice: str | None,
) -> Event:
    agrees = found is not None and found.action == action
    common = {
        "keyword": found.keyword if agrees and found else None,
        "match": found.match if agrees and found else None,
        "policy": policy.name if agrees else None,
        "channel": "sms",
        "method": "import",
        "actor": SUBJECT,
        "notice_version": notice,
        "recorded_by": context.options.recorded_by,
    }
    if action == "opt_in":
        return ConsentGranted(scope="subaccount", **common)  # type: ignore[arg-type]
    keyword_wide = agrees and found is not None and found.scope == "tenant"
    revoke_all = context.revoke_all and not wide and not keyword_wide
    return ConsentRevoked(
        scope="tenant" if wide or keyword_wide or revoke_all else "subaccount",
        revoke_all=revoke_all,
        **common,  # type: ignore[arg-type]
    )


def _occurred(context: _Context, value: str, action: Action) -> tuple[str, bool]:
    """The canonical occurred time of a row, and whether it was assumed (``--as-of``)."""
    if not value:
        if action == "opt_in":
            raise _Bad("occurred_at", "an opt-in needs its own date (--as-of is for opt-outs)")
        if context.as_of is None:
            raise _Bad(
                "occurred_at", "the row has no date: give one, or an --as-of date for such rows"
            )
        return context.as_of, True
    try:
        occurred = _time(value, context.zone, "occurred_at")
    except InvalidInput as exc:
        raise _Bad("occurred_at", str(exc)) from exc
    if parse_time(occurred) - parse_time(context.now) > FUTURE_TOLERANCE:
        raise _Bad("occurred_at", f"{occurred} is in the future")
    return occurred, False


def _time(value: str, zone: tzinfo | None, what: str) -> str:
    """RFC 3339 (or a date, 00:00Z) as canonical text; with ``zone``, dates and local times
    are read in it."""
    text = value.strip()
    if zone is not None:
        try:
            if _DATE.fullmatch(text):
                day = date.fromisoformat(text)
                return format_time(datetime(day.year, day.month, day.day, tzinfo=zone))
            if _NAIVE.fullmatch(text):
                return format_time(
                    datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=zone)
                )
        except ValueError as exc:
            raise InvalidTime(f"{what} {text!r} is not a valid time") from exc
    try:
        return format_time(parse_time(text))
    except InvalidTime as exc:
        hint = " (or give --timezone for local times)" if _NAIVE.fullmatch(text) else ""
        raise InvalidTime(f"{what}: {exc}{hint}") from exc


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"{name!r} is not a known time zone (e.g. Asia/Singapore)") from exc


def _capped(value: str | None, what: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_FIELD:
        raise _Bad(what, f"{what} is longer than {MAX_FIELD} characters")
    return value
