"""The program: one argument parser built from every command group, and ``main``.

Guarantees: each command runs the ``handler`` its group set on its parser; a ``LedgerError`` or
``InvalidInput`` it raises is printed as one line on stderr (``consent-ledger <command>:
<reason>``) and exits 1, an interrupt exits 130, and a usage error exits 2 (argparse).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from api.cli import adopt, eightxeight, evidence, keys, log, records, serve, store
from api.cli.common import Handler, Subparsers
from ledger.errors import InvalidInput, LedgerError

DESCRIPTION = "The ``consent-ledger`` command line."
GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    records.add_parsers,
    serve.add_parsers,
    keys.add_parsers,
    log.add_parsers,
    evidence.add_parsers,
    store.add_parsers,
    adopt.add_parsers,
    eightxeight.add_parsers,
)
"""Every command group, in the order its commands are listed in ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="consent-ledger", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parsers in GROUPS:
        add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (LedgerError, InvalidInput) as exc:
        sys.stderr.write(f"consent-ledger {args.command}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
