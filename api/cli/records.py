"""Commands on the log and its projections: ``init``, ``record``, ``classify``, ``check``,
``history``, ``rebuild`` and ``subaccount``.

Guarantees: ``record`` goes through the same intake rules as the API and keeps who ran it (login
name and host) as evidence; ``classify`` stores nothing; ``check`` exits 0 whatever the
decision; ``history`` prints every entry about the number as JSON lines, oldest first.
"""

from __future__ import annotations

import argparse
import os
import socket

import msgspec

from api.cli.common import Subparsers, db_options, emit, open_ledger
from api.cli.progress import progress_bar, quiet_option
from api.views import decision_view
from ledger.entries import Evidence
from ledger.errors import InvalidInput
from ledger.events import METHODS
from ledger.keywords import Policy
from ledger.timefmt import normalize_time
from projections.ids import client_key
from projections.intake import IntakeRequest, record
from projections.ledger import TenantUpdate
from projections.rebuild import rebuild


def _init(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    emit({"database": ledger.store.location, "log_position": ledger.head()})
    return 0


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


def _check(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
    known = ledger.known_at(args.known_at)
    at = normalize_time(args.at) if args.at else None
    decision = ledger.decide(args.tenant, args.subaccount, msisdn, at=at, known_at=known.position)
    emit(decision_view(decision, msisdn, args.subaccount, known))
    return 0


def _history(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
    for stored in ledger.history(args.tenant, msisdn):
        emit(stored.entry)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    with progress_bar("rebuild", ledger.head(), "entries", quiet=args.quiet) as bar:
        count = rebuild(ledger, bar.update)
    result: dict[str, object] = {"replayed": count, "log_position": ledger.head()}
    conflicts = ledger.read_model.policy_version_conflicts()
    if conflicts:  # an older break of the one-policy-per-version invariant: reported
        result["policy_version_conflicts"] = msgspec.to_builtins(conflicts)
    emit(result)
    return 0


def _subaccount(args: argparse.Namespace) -> int:
    if args.action == "set" and not args.id:
        raise InvalidInput("subaccount set needs an id")
    ledger = open_ledger(args)
    if args.action == "set":
        ledger.configure_subaccount(
            args.tenant,
            args.id,
            actor=f"cli:{cli_user()}",
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


def _tenant(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    revoke = None if args.revoke_all is None else args.revoke_all == "on"
    if args.action == "show":
        update = TenantUpdate(
            revoke_all=ledger.revoke_all(args.tenant),
            default_region=ledger.tenant_region(args.tenant),
            evidence_retention_days=ledger.evidence_retention(args.tenant),
        )
    else:
        if args.below_minimum != (args.reason is not None):
            raise InvalidInput("--below-minimum and --reason go together")
        update = ledger.update_tenant(
            args.tenant,
            actor=f"cli:{cli_user()}",
            revoke_all=revoke,
            default_region=args.region,
            evidence_retention_days=args.evidence_retention_days,
            below_minimum_reason=args.reason,
        )
    emit(
        {
            "tenant": args.tenant,
            "revoke_all": update.revoke_all,
            "default_region": update.default_region,
            "position": update.appended.position if update.appended else None,
            "changed": update.appended is not None,
            "evidence_retention_days": update.evidence_retention_days,
            "retention_reason": update.retention_reason,
        }
    )
    return 0


def add_parsers(sub: Subparsers) -> None:
    """Add ``init``, ``record``, ``classify``, ``check``, ``history``, ``rebuild`` and
    ``subaccount``."""
    p = sub.add_parser("init", help="create or migrate the database")
    db_options(p)
    p.set_defaults(handler=_init)
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
    p.set_defaults(handler=_record)
    p = sub.add_parser("classify", help="classify a message text with a keyword policy")
    db_options(p)
    p.add_argument("text")
    p.add_argument("--subaccount", help="use this subaccount's policy (default policy otherwise)")
    p.set_defaults(handler=_classify)
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
    p.set_defaults(handler=_check)
    p = sub.add_parser("history", help="every entry about a number, oldest first (JSON lines)")
    db_options(p)
    p.add_argument("msisdn")
    p.add_argument("--subaccount", help="read bare national digits in this subaccount's region")
    p.set_defaults(handler=_history)
    p = sub.add_parser("rebuild", help="drop and replay every projection")
    db_options(p)
    quiet_option(p)
    p.set_defaults(handler=_rebuild)
    p = sub.add_parser("subaccount", help="register or configure a subaccount, or list them")
    db_options(p)
    p.add_argument("action", choices=["set", "list"])
    p.add_argument("id", nargs="?", help="subaccount id (required for set)")
    p.add_argument("--region", help="default region for bare national numbers, e.g. SG")
    p.add_argument("--mode", choices=["strict", "standard", "conservative"])
    p.add_argument("--unknown", choices=["allow", "deny"], help="numbers with no entry")
    p.set_defaults(handler=_subaccount)
    p = sub.add_parser("tenant", help="show or change the tenant's settings")
    db_options(p)
    p.add_argument("action", choices=["show", "set"])
    p.add_argument(
        "--revoke-all",
        choices=["on", "off"],
        help="every opt-out applies to every subaccount of the tenant",
    )
    p.add_argument(
        "--region",
        help="default region for national numbers of opt-outs whose subaccount is not resolved",
    )
    p.add_argument(
        "--evidence-retention-days",
        type=int,
        metavar="N",
        help="erase evidence of entries superseded longer ago than N days (0: keep for ever)",
    )
    p.add_argument(
        "--below-minimum",
        action="store_true",
        help="accept a period under 1,461 days (4 years); needs --reason, which is recorded",
    )
    p.add_argument("--reason", help="why a period under the minimum is right (recorded)")
    p.set_defaults(handler=_tenant)
