"""Commands for adopting the ledger: ``import`` a suppression list (docs/adopting.md).

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
    """Add ``import``."""
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
