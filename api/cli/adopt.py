"""Commands for adopting the ledger: ``import`` and ``export`` suppression lists, ``erase``
evidence, apply ``retention`` (docs/adopting.md).

Guarantees: the rules are those of ``projections.imports`` (the API's ``POST /v1/imports``
follows the same); the summary is one JSON line on stdout, bad rows go to the rejects file
(CSV: row, column, reason) as they are found; stdin is spooled to a private temporary file
(deleted afterwards) so its SHA-256 can be named in every entry's evidence.
"""

from __future__ import annotations

import argparse
import csv
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from api.cli.common import Subparsers, db_options, emit, open_ledger
from api.cli.progress import progress_bar, quiet_option
from api.cli.records import cli_user
from ledger.errors import InvalidInput
from projections.erasure import erase_number, erase_position
from projections.exports import (
    SUPPRESSED_COLUMNS,
    consent_records,
    csv_row,
    export_point,
    suppression_list,
)
from projections.import_rows import FORMATS, parse_mapping
from projections.imports import (
    ImportOptions,
    Rejected,
    SourceFile,
    file_format,
    import_file,
    source_file,
    spool,
)
from projections.retention import apply_retention


def _import(args: argparse.Namespace) -> int:
    mapping = parse_mapping(args.map or [])
    ledger = open_ledger(args)
    user = f"cli:{cli_user()}"
    options = ImportOptions(
        tenant=args.tenant,
        recorded_by=user,
        subaccount=args.subaccount,
        tenant_wide=args.tenant_wide,
        as_of=args.as_of,
        timezone=args.timezone,
        region=args.region,
        strict=args.strict,
        dry_run=args.dry_run,
        batch_rows=args.batch_rows,
        host=socket.gethostname() or None,
    )
    with _source(args.file) as source, _rejects(args.rejects) as reject:
        fmt = file_format(source, args.format)
        with progress_bar(f"import {source.name}", source.size, "bytes", quiet=args.quiet) as bar:
            summary = import_file(
                ledger, source, fmt, options, mapping=mapping, rejected=reject, progress=bar.update
            )
    emit(summary)
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.all_states and (args.subaccount or args.tenant_wide_only or args.format == "csv"):
        raise InvalidInput("--all-states exports every subaccount as JSON lines; drop the rest")
    if not args.all_states and not args.subaccount and not args.tenant_wide_only:
        raise InvalidInput("name the list: --subaccount S, --tenant-wide-only or --all-states")
    if args.subaccount and args.tenant_wide_only:
        raise InvalidInput("give either --subaccount or --tenant-wide-only")
    ledger = open_ledger(args)
    point = export_point(ledger, args.tenant, args.at)
    out = sys.stdout
    with progress_bar("export", None, "numbers", quiet=args.quiet) as bar:
        if args.all_states:
            for record in consent_records(ledger, point, progress=bar.update):
                emit(record)
        elif args.format != "jsonl":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(SUPPRESSED_COLUMNS)
            for number in suppression_list(ledger, point, args.subaccount, progress=bar.update):
                writer.writerow(csv_row(number))
        else:
            for number in suppression_list(ledger, point, args.subaccount, progress=bar.update):
                emit(number)
    return 0


def _erase(args: argparse.Namespace) -> int:
    if (args.position is None) == (args.msisdn is None):
        raise InvalidInput("name what to erase: --position N or --msisdn M")
    ledger = open_ledger(args)
    actor = f"cli:{cli_user()}"
    if args.position is not None:
        done = erase_position(ledger, args.tenant, args.position, reason=args.reason, actor=actor)
    else:
        number = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
        done = erase_number(ledger, args.tenant, number, reason=args.reason, actor=actor)
    emit(done)
    return 0


def _retention(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    with progress_bar("retention", None, "entries", quiet=args.quiet) as bar:
        done = apply_retention(ledger, args.tenant, actor=f"cli:{cli_user()}", progress=bar.update)
    emit(done)
    return 0


@contextmanager
def _source(name: str) -> Iterator[SourceFile]:
    """The file to import; stdin (``-``) spooled to a temporary file, deleted afterwards."""
    if name != "-":
        path = Path(name).expanduser()
        if not path.is_file():
            raise InvalidInput(f"{name}: no such file")
        yield source_file(path)
        return
    stdin = sys.stdin.buffer
    source = spool(iter(lambda: stdin.read(1 << 20), b""), "stdin")
    try:
        yield source
    finally:
        source.path.unlink(missing_ok=True)


@contextmanager
def _rejects(path: str | None) -> Iterator[Callable[[Rejected], None]]:
    """Where rejected rows go: a CSV file (row, column, reason), or nowhere but the count."""
    if path is None:
        yield lambda _: None
        return
    handle: TextIO
    with Path(path).expanduser().open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "column", "reason"])

        def write(item: Rejected) -> None:
            writer.writerow([item.row, item.column or "", item.reason])

        yield write


def add_parsers(sub: Subparsers) -> None:
    """Add ``import`` and ``export``."""
    _add_import(sub)
    _add_export(sub)
    _add_erase(sub)
    p = sub.add_parser(
        "retention",
        help="apply the tenant's evidence retention now",
        description="Erases the evidence of entries superseded (or retracted) longer ago than "
        "the tenant's evidence_retention_days (set with: tenant set --evidence-retention-days "
        "N); evidence of an entry that still decides a number's state is kept. The service "
        "applies it once a day.",
    )
    db_options(p)
    p.add_argument("action", choices=["apply"])
    quiet_option(p)
    p.set_defaults(handler=_retention)


def _add_erase(sub: Subparsers) -> None:
    p = sub.add_parser(
        "erase",
        help="erase evidence (personal data) of an entry or of a number",
        description="Erases the salted evidence (and, by number, the quarantined bodies that "
        "hold it) and appends a tombstone entry saying when, why and by whom. Suppression "
        "never changes; verify, proofs and checkpoints stay valid. The reason is kept in the "
        "immutable log: give a ticket reference, never personal data.",
    )
    db_options(p)
    p.add_argument("--position", type=int, help="the entry whose evidence to erase")
    p.add_argument("--msisdn", help="erase every evidence record of this number")
    p.add_argument("--subaccount", help="reads a national --msisdn in its region")
    p.add_argument("--reason", required=True, help="a ticket reference (kept in the log)")
    p.set_defaults(handler=_erase)


def _add_export(sub: Subparsers) -> None:
    p = sub.add_parser(
        "export",
        help="export a suppression list (or every consent record)",
        description="Every number the subaccount must not send to at --at (now), tenant-wide "
        "opt-outs included, with the deciding position, keyword, method and time; "
        "--tenant-wide-only: the numbers every subaccount must not send to (for 8x8's "
        "account-wide blacklist); --all-states: one JSON line per (subaccount, number) with "
        "its latest consent, fields after ISO/IEC TS 27560.",
    )
    db_options(p)
    p.add_argument("--subaccount", help="the subaccount whose list to export")
    p.add_argument("--tenant-wide-only", action="store_true", help="numbers blocked everywhere")
    p.add_argument("--all-states", action="store_true", help="every consent record, JSON lines")
    p.add_argument("--at", help="valid time (RFC 3339 or a date; default now)")
    p.add_argument("--format", choices=("csv", "jsonl"), help="csv (default) or jsonl")
    quiet_option(p)
    p.set_defaults(handler=_export)


def _add_import(sub: Subparsers) -> None:
    p = sub.add_parser(
        "import",
        help="import a suppression list (CSV, TSV or JSON lines; - for stdin)",
        description="Each row records an opt-out (or opt-in) with method import. Columns: "
        "msisdn (required), subaccount (* = every subaccount), action (opt_out default, "
        "opt_in), occurred_at (RFC 3339 or a date), source, text, notice. A headerless "
        "one-column file is a list of opt-outs. Importing again records nothing twice. "
        "Prints a JSON summary.",
    )
    db_options(p)
    p.add_argument("file", help="the file to import, or - for stdin")
    p.add_argument("--format", choices=FORMATS, help="default: from the name or the content")
    p.add_argument("--subaccount", help="subaccount of rows that name none")
    p.add_argument(
        "--tenant-wide",
        action="store_true",
        help="rows that name no subaccount apply to every subaccount (as * does)",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=FIELD",
        help="read a column of another name as a field (repeatable), e.g. --map Phone=msisdn",
    )
    p.add_argument("--as-of", help="date of rows without one (opt-outs only; kept as assumed)")
    p.add_argument("--timezone", help="time zone of dates and local times (e.g. Asia/Singapore)")
    p.add_argument(
        "--region",
        help="region of national numbers where the subaccount has none, and of * rows (e.g. SG)",
    )
    p.add_argument("--rejects", metavar="PATH", help="write rejected rows here (CSV)")
    p.add_argument("--strict", action="store_true", help="record nothing unless every row is good")
    p.add_argument("--dry-run", action="store_true", help="check every row, record nothing")
    p.add_argument("--batch-rows", type=int, default=500, help=argparse.SUPPRESS)
    quiet_option(p)
    p.set_defaults(handler=_import)
