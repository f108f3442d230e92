"""CLI commands about the store as a whole: ``copy-store``.

``copy-store`` guarantees: it reads the source at one snapshot, refuses a destination that
holds anything, copies entries byte for byte with their evidence (erasure tombstones included),
checkpoints, API keys, quarantined bodies and the verifier key (``projections.copy``), and
exits 0 only when the destination's head and tree root equal the source's and ``verify``
passes on the destination. Progress goes to stderr; the JSON summary to stdout. Locations are
shown with their passwords masked.
"""

from __future__ import annotations

import argparse
import sys
import time

from api.cli.common import Subparsers, emit
from ledger.location import parse_location
from projections.copy import copy_store
from projections.engine import open_engine, verify_store


class _Progress:
    """``copy-store: 12,000/50,000 entries (24%) [3.1 s]`` lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        pct = 100 * done // total if total else 100
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"copy-store: {done:,}/{total:,} entries ({pct}%) [{elapsed:.1f} s]\n")
        sys.stderr.flush()


def _copy_store(args: argparse.Namespace) -> int:
    source_at, target_at = parse_location(args.source), parse_location(args.target)
    progress = _Progress(args.quiet)
    source = open_engine(source_at)
    try:
        target = open_engine(target_at)
        try:
            copied = copy_store(source.images, target.images, progress)
        finally:
            target.store.close()
    finally:
        source.store.close()
    verifier = args.key or None
    found = verify_store(target_at, verifier)
    ok = found.report.ok and not found.differences
    summary = {
        "from": source_at.masked,
        "to": target_at.masked,
        "entries": copied.entries,
        "checkpoints": copied.checkpoints,
        "keys": copied.keys,
        "quarantined": copied.quarantined,
        "root": copied.root,
        "verified": ok,
        "signatures_checked": found.report.signatures_checked,
        "seconds": round(time.monotonic() - progress.started, 2),
    }
    emit(summary)
    if not ok:
        first = found.report.problems[0].what if found.report.problems else "projections differ"
        sys.stderr.write(f"consent-ledger copy-store: the copy does not verify: {first}\n")
        return 1
    return 0


def add_parsers(sub: Subparsers) -> None:
    """Add ``copy-store``."""
    p = sub.add_parser(
        "copy-store",
        help="copy a whole store into an empty one (SQLite ⇄ PostgreSQL)",
        description="Copy everything a store holds — entries byte for byte with their "
        "evidence, checkpoints, API keys, quarantined bodies, the verifier key — into an empty "
        "store, then verify the copy. The source is read at one snapshot and may keep taking "
        "appends (they are not copied). Locations: a SQLite path, sqlite:///PATH or a "
        "postgresql:// URL.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="LOCATION")
    p.add_argument("--to", dest="target", required=True, metavar="LOCATION")
    p.add_argument(
        "--key",
        metavar="VERIFIER_KEY",
        help="check the copied checkpoints' signatures with this verifier key",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=_copy_store)
