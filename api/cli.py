"""The ``consent-ledger`` command line.

Guarantees: every command that touches the database takes ``--db`` (default
``$CONSENT_LEDGER_DB``, then ``~/.local/share/consent-ledger/ledger.db``) and ``--tenant``
(default ``default``); output is JSON on stdout (``keys create`` prints the new key alone); an
error prints one line on stderr and exits non-zero, having changed nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from api.views import decision_view
from ledger.entries import Evidence
from ledger.errors import InvalidInput, LedgerError
from ledger.events import METHODS
from ledger.keywords import Policy
from ledger.timefmt import normalize_time
from projections.ids import client_key
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
    """Open (creating privately and migrating if needed) the database named by ``args.db``."""
    return ConsentLedger(Path(args.db).expanduser())


def emit(value: object) -> None:
    """Print ``value`` as one line of JSON."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for subcommand ``name``."""

    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


@command("init")
def _init(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    emit({"database": str(ledger.store.path), "log_position": ledger.head()})
    return 0


@command("record")
def _record(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    user = f"cli:{cli_user()}"
    result = record(
        ledger,
        IntakeRequest(
            tenant=args.tenant,
            subaccount=args.subaccount,
            msisdn=args.msisdn,
            verb=args.action,
            text=args.text,
            occurred_at=args.occurred_at,
            method=args.method,
            key=client_key(args.idempotency_key) if args.idempotency_key else None,
            evidence=Evidence(text=args.text, recorded_by=user, host=socket.gethostname() or None),
            recorded_by=user,
            claimed_actor=args.actor,
        ),
    )
    emit(
        {
            "outcome": result.outcome,
            "position": result.position,
            "duplicate": result.duplicate,
            "msisdn": result.msisdn,
            "subaccount": result.subaccount,
            "unresolved": result.unresolved,
            "flagged": result.flagged,
            "notes": list(result.notes),
        }
    )
    return 0


def cli_user() -> str:
    """Who runs this command (the login name as the environment gives it)."""
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


@command("classify")
def _classify(args: argparse.Namespace) -> int:
    ledger = open_ledger(args) if args.subaccount else None
    policy = ledger.policy(args.tenant, args.subaccount) if ledger else Policy()
    found = policy.classify(args.text)
    emit(
        {
            "action": found.action,
            "scope": found.scope,
            "keyword": found.keyword,
            "match": found.match,
            "policy": found.policy,
        }
    )
    return 0


@command("check")
def _check(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
    known = ledger.known_at(args.known_at)
    at = normalize_time(args.at) if args.at else None
    decision = ledger.decide(args.tenant, args.subaccount, msisdn, at=at, known_at=known.position)
    emit(decision_view(decision, msisdn, args.subaccount, known))
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


@command("subaccount")
def _subaccount(args: argparse.Namespace) -> int:
    if args.action == "set" and not args.id:
        raise InvalidInput("subaccount set needs an id")
    ledger = open_ledger(args)
    if args.action == "set":
        ledger.configure_subaccount(
            args.tenant,
            args.id,
            actor=f"cli:{os.environ.get('USER', 'unknown')}",
            default_region=args.region,
            mode=args.mode,
            unknown=args.unknown,
        )
    settings = [s for s in ledger.subaccounts(args.tenant) if args.id in (None, s.subaccount)]
    for item in settings:
        emit(
            {
                "subaccount": item.subaccount,
                "default_region": item.default_region,
                "mode": item.mode,
                "unknown": item.unknown,
                "policy": item.policy.name,
                "position": item.position,
            }
        )
    return 0


# -- serve and keys ----------------------------------------------------------------------------
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from api import serve
    from api.settings import ENV_PREFIX, Settings

    given = {
        "db": Path(args.db).expanduser().resolve(),
        "origin": args.origin,
        "checkpoint_interval": args.checkpoint_interval,
        "log_format": args.log_format,
        "metrics": args.metrics,
        "reader_threads": args.reader_threads,
        "writer_threads": args.writer_threads,
    }
    env = dict(os.environ)
    env.update({ENV_PREFIX + k.upper(): str(v) for k, v in given.items() if v is not None})
    try:
        settings = Settings.from_env(env)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"bad setting ({ENV_PREFIX}* or option): {exc}") from exc
    return serve.serve(settings, host=args.host, port=args.port, workers=args.workers)


@command("keys")
def _keys(args: argparse.Namespace) -> int:
    from ledger.sqlite.connection import connect
    from ledger.sqlite.migrate import migrate

    conn = connect(Path(args.db).expanduser())
    try:
        migrate(conn)
        action: Callable[[Any, argparse.Namespace], int] = args.key_action
        return action(conn, args)
    finally:
        conn.close()


def _keys_create(conn: Any, args: argparse.Namespace) -> int:
    from api.keys import SCOPES, create_key, parse_scopes

    if args.operator:
        if args.scopes is not None:
            raise InvalidInput("operator keys act on the whole log; --scopes is for tenant keys")
        tenant, scopes = None, list(SCOPES)
    else:
        tenant = args.tenant or "default"
        if _TENANT.fullmatch(tenant) is None:
            raise InvalidInput(f"{tenant[:80]!r} is not a valid tenant id")
        if args.scopes is None:
            raise InvalidInput(f"--scopes is required for a tenant key ({','.join(SCOPES)})")
        scopes = parse_scopes(args.scopes)
    sys.stdout.write(create_key(conn, tenant=tenant, scopes=scopes, label=args.label) + "\n")
    return 0


def _keys_list(conn: Any, args: argparse.Namespace) -> int:
    from api.keys import list_keys

    for info in list_keys(conn):
        if args.tenant is None or info.tenant == args.tenant:
            emit(info)
    return 0


def _keys_revoke(conn: Any, args: argparse.Namespace) -> int:
    from api.keys import list_keys, revoke_key

    revoke_key(conn, args.id)
    emit(next(info for info in list_keys(conn) if info.id == args.id))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _serve_and_keys_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the HTTP service (uvicorn, several workers)")
    p.add_argument(
        "--db", default=str(default_db()), help="SQLite database (env CONSENT_LEDGER_DB)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes sharing the database (default 1)",
    )
    p.add_argument(
        "--reader-threads",
        type=_positive,
        help="threads per worker for database reads (default 2)",
    )
    p.add_argument(
        "--writer-threads",
        type=_positive,
        help="threads per worker for appends, grouped into shared commits (default 32)",
    )
    p.add_argument("--origin", help="checkpoint origin line (default consent-ledger)")
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between automatic checkpoints; 0 disables (default 60)",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="JSON lines, console, or auto: console on a TTY (default auto)",
    )
    p.add_argument(
        "--metrics",
        choices=["public", "key"],
        help="who may read /metrics: anyone, or only a key with the metrics scope or an "
        "operator key (default public)",
    )
    keys = sub.add_parser("keys", help="manage API keys (create, list, revoke)")
    actions = keys.add_subparsers(
        dest="keys_command", required=True, metavar="{create,list,revoke}"
    )
    p = actions.add_parser("create", help="create a key; prints it alone on stdout, once")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tenant", help="the tenant the key acts for (default: default)")
    who.add_argument(
        "--operator",
        action="store_true",
        help="a deployment-wide key: reads the whole log, signs checkpoints",
    )
    p.add_argument("--scopes", help="comma-separated: ingest,check,audit,admin,metrics")
    p.add_argument("--label", help="a note to recognise the key by")
    p.set_defaults(key_action=_keys_create)
    p = actions.add_parser("list", help="every key as JSON lines (never the secret)")
    p.add_argument("--tenant", help="only this tenant's keys")
    p.set_defaults(key_action=_keys_list)
    p = actions.add_parser("revoke", help="revoke a key by id, effective at once")
    p.add_argument("id", help="the key id (the part after cl_)")
    p.set_defaults(key_action=_keys_revoke)
    for p in actions.choices.values():
        p.add_argument(
            "--db", default=str(default_db()), help="SQLite database (env CONSENT_LEDGER_DB)"
        )


# -- shared options ----------------------------------------------------------------------------
def db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", default=str(default_db()), help="SQLite database (env CONSENT_LEDGER_DB)"
    )
    p.add_argument("--tenant", default="default", help="tenant id (default: default)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="consent-ledger", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    db_options(sub.add_parser("init", help="create or migrate the database"))
    p = sub.add_parser("record", help="append a consent event")
    db_options(p)
    p.add_argument(
        "--subaccount",
        help="the subaccount (required for opt_in and help; an opt-out without a known one "
        "applies to every subaccount and is queued for review)",
    )
    p.add_argument("--msisdn", required=True)
    p.add_argument("--action", required=True, choices=["opt_out", "opt_in", "help"])
    p.add_argument("--text")
    p.add_argument("--occurred-at")
    p.add_argument("--method", default="admin", choices=METHODS)
    p.add_argument("--actor")
    p.add_argument("--idempotency-key")
    p = sub.add_parser("classify", help="classify a message text with a keyword policy")
    db_options(p)
    p.add_argument("text")
    p.add_argument("--subaccount", help="use this subaccount's policy (default policy otherwise)")
    p = sub.add_parser("check", help="may this subaccount send to this number?")
    db_options(p)
    p.add_argument("msisdn")
    p.add_argument("--subaccount", required=True)
    p.add_argument("--at", help="valid time (RFC 3339 or date; default now)")
    p.add_argument(
        "--known-at",
        help="as known at an RFC 3339 time or a log position (up to the newest; a time in the "
        "future is answered as known now, with a note)",
    )
    p = sub.add_parser("history", help="every entry about a number, oldest first (JSON lines)")
    db_options(p)
    p.add_argument("msisdn")
    p.add_argument("--subaccount", help="read bare national digits in this subaccount's region")
    db_options(sub.add_parser("rebuild", help="drop and replay every projection"))
    p = sub.add_parser("subaccount", help="register or configure a subaccount, or list them")
    db_options(p)
    p.add_argument("action", choices=["set", "list"])
    p.add_argument("id", nargs="?", help="subaccount id (required for set)")
    p.add_argument("--region", help="default region for bare national numbers, e.g. SG")
    p.add_argument("--mode", choices=["strict", "standard", "conservative"])
    p.add_argument("--unknown", choices=["allow", "deny"], help="numbers with no entry")
    _serve_and_keys_parsers(sub)
    for extend in EXTENSIONS:
        extend(sub)
    return parser


EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []
"""Functions that add more subcommands (each extension module's ``add_commands``)."""

EXTENSION_MODULES = ("api.cli_log", "api.cli_evidence")
"""Modules with more subcommands: each defines ``add_commands(sub)`` and uses ``@command``."""


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
    """Import the modules that register further subcommands (once)."""
    if EXTENSIONS:
        return
    for name in EXTENSION_MODULES:
        EXTENSIONS.append(importlib.import_module(name).add_commands)


if __name__ == "__main__":
    sys.exit(main())
