"""The ``consent-ledger`` command line.

Guarantees: every command that touches the database takes ``--db`` (default
``$CONSENT_LEDGER_DB``, then ``~/.local/share/consent-ledger/ledger.db``) and ``--tenant``
(default ``default``); output is JSON on stdout; an error prints one line on stderr and exits
non-zero, having changed nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from api.views import decision_view
from ledger.errors import InvalidInput, LedgerError
from ledger.events import METHODS
from ledger.keywords import Policy
from ledger.timefmt import normalize_time
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger
from projections.rebuild import rebuild

DEFAULT_DB = Path("~/.local/share/consent-ledger/ledger.db")
Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def default_db() -> Path:
    """The database path used when ``--db`` is not given."""
    env = os.environ.get("CONSENT_LEDGER_DB")
    return Path(env) if env else DEFAULT_DB.expanduser()


def open_ledger(args: argparse.Namespace) -> ConsentLedger:
    """Open (creating and migrating if needed) the database named by ``args.db``."""
    path = Path(args.db).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return ConsentLedger(path)


def emit(value: object) -> None:
    """Print ``value`` as one line of JSON."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for subcommand ``name``."""

    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


def parse_known_at(text: str | None) -> str | int | None:
    """A known-at value: a log position (digits) or an RFC 3339 time."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    return normalize_time(text)


@command("init")
def _init(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    emit({"database": str(ledger.store.path), "log_position": ledger.head()})
    return 0


@command("record")
def _record(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    result = record(ledger, IntakeRequest(
        tenant=args.tenant, subaccount=args.subaccount, msisdn=args.msisdn, verb=args.action,
        text=args.text, occurred_at=args.occurred_at, method=args.method,
        actor=args.actor or f"cli:{os.environ.get('USER', 'unknown')}",
        key=args.idempotency_key,
    ))
    emit({"outcome": result.outcome, "position": result.position,
          "duplicate": result.duplicate, "msisdn": result.msisdn,
          "subaccount": result.subaccount, "notes": list(result.notes)})
    return 0


@command("classify")
def _classify(args: argparse.Namespace) -> int:
    ledger = open_ledger(args) if args.subaccount else None
    policy = ledger.policy(args.tenant, args.subaccount) if ledger else Policy()
    found = policy.classify(args.text)
    emit({"action": found.action, "scope": found.scope, "keyword": found.keyword,
          "match": found.match, "policy": found.policy})
    return 0


@command("check")
def _check(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
    known_at = parse_known_at(args.known_at)
    at = normalize_time(args.at) if args.at else None
    decision = ledger.decide(args.tenant, args.subaccount, msisdn, at=at,
                             known_at=ledger.resolve_known_at(known_at))
    emit(decision_view(decision, msisdn, args.subaccount, known_at))
    return 0


@command("history")
def _history(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
    for stored in ledger.history(args.tenant, msisdn):
        emit(stored.entry)
    return 0


@command("rebuild")
def _rebuild(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    count = rebuild(ledger)
    emit({"replayed": count, "log_position": ledger.head()})
    return 0


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=str(default_db()), help="SQLite database (env CONSENT_LEDGER_DB)")
    p.add_argument("--tenant", default="default", help="tenant id (default: default)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="consent-ledger", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _db_options(sub.add_parser("init", help="create or migrate the database"))
    p = sub.add_parser("record", help="append a consent event")
    _db_options(p)
    p.add_argument("--subaccount", required=True)
    p.add_argument("--msisdn", required=True)
    p.add_argument("--action", required=True, choices=["opt_out", "opt_in", "help"])
    p.add_argument("--text")
    p.add_argument("--occurred-at")
    p.add_argument("--method", default="admin", choices=METHODS)
    p.add_argument("--actor")
    p.add_argument("--idempotency-key")
    p = sub.add_parser("classify", help="classify a message text with a keyword policy")
    _db_options(p)
    p.add_argument("text")
    p.add_argument("--subaccount", help="use this subaccount's policy (default policy otherwise)")
    p = sub.add_parser("check", help="may this subaccount send to this number?")
    _db_options(p)
    p.add_argument("msisdn")
    p.add_argument("--subaccount", required=True)
    p.add_argument("--at", help="valid time (RFC 3339 or date; default now)")
    p.add_argument("--known-at", help="as known at an RFC 3339 time or a log position")
    p = sub.add_parser("history", help="every entry about a number, oldest first (JSON lines)")
    _db_options(p)
    p.add_argument("msisdn")
    p.add_argument("--subaccount", help="read bare national digits in this subaccount's region")
    _db_options(sub.add_parser("rebuild", help="drop and replay every projection"))
    for extend in EXTENSIONS:
        extend(sub)
    return parser


EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []
"""Functions that add more subcommands (registered by other CLI modules)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    _load_extensions()
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (LedgerError, InvalidInput) as exc:
        sys.stderr.write(f"consent-ledger {args.command}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _load_extensions() -> None:
    """Import the modules that register further subcommands."""


if __name__ == "__main__":
    sys.exit(main())
