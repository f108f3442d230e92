"""The ``keys`` command: create, list and revoke API keys.

Guarantees: ``keys create`` prints the new key alone on stdout, once (only a hash of its secret
is stored); ``keys list`` prints every key as JSON lines, never a secret; ``keys revoke`` takes
effect at once for every worker; a refused request creates or revokes no key.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

from api.cli.common import Subparsers, db_option, emit, open_ledger
from api.keys import SCOPES, create_key, list_keys, parse_scopes, revoke_key
from ledger.errors import InvalidInput
from projections.ledger import ConsentLedger

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def _keys(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    try:
        action: Callable[[ConsentLedger, argparse.Namespace], int] = args.key_action
        return action(ledger, args)
    finally:
        ledger.close()


def _keys_create(ledger: ConsentLedger, args: argparse.Namespace) -> int:
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
    with ledger.store.keys_for_update() as keys:
        key = create_key(keys, tenant=tenant, scopes=scopes, label=args.label)
    sys.stdout.write(key + "\n")
    return 0


def _keys_list(ledger: ConsentLedger, args: argparse.Namespace) -> int:
    for info in list_keys(ledger.store.keys()):
        if args.tenant is None or info.tenant == args.tenant:
            emit(info)
    return 0


def _keys_revoke(ledger: ConsentLedger, args: argparse.Namespace) -> int:
    with ledger.store.keys_for_update() as keys:
        revoke_key(keys, args.id)
        revoked = next(info for info in list_keys(keys) if info.id == args.id)
    emit(revoked)
    return 0


def add_parsers(sub: Subparsers) -> None:
    """Add ``keys create``, ``keys list`` and ``keys revoke``."""
    keys = sub.add_parser("keys", help="manage API keys (create, list, revoke)")
    keys.set_defaults(handler=_keys)
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
        db_option(p)
