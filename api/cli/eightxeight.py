"""The ``8x8`` commands: the Automation Builder workflow, replies, the blacklist sync, the fake.

Guarantees: ``8x8 workflow`` writes a definition that passes the structural check (``-o FILE``
or stdout) and, with ``--push``, sends exactly that document to 8x8's Automation API and
records the definition id so the next push updates it (``--dry-run``: prints the request, the
key masked, sends and records nothing); the 8x8 API key comes from the environment or a file
(``api.eightxeight.credentials``), never from an argument or the ledger.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from api.cli.common import Subparsers, db_options, emit, open_ledger
from api.cli.records import cli_user
from api.eightxeight import automation, credentials
from ledger.errors import InvalidInput
from projections.eightxeight import replies, workflow
from projections.ids import valid_subaccount

INGEST_KEY_ENV = "CONSENT_LEDGER_INGEST_KEY"


def _workflow(args: argparse.Namespace) -> int:
    subaccount = valid_subaccount(args.subaccount)
    if not args.url.startswith(("https://", "http://")):
        raise InvalidInput(f"--url must be the service's base URL (https://…), not {args.url!r}")
    if args.push and not args.account:
        raise InvalidInput("--push needs --account ACCOUNT_ID (the 8x8 account)")
    ledger = open_ledger(args)
    try:
        policy = ledger.policy(args.tenant, subaccount)
        auth = os.environ.get(INGEST_KEY_ENV)
        document = workflow.definition(
            subaccount,
            args.url,
            policy,
            mode=args.mode,
            channel=args.channel,
            authorization=f"Bearer {auth.strip()}" if auth and auth.strip() else None,
        )
        problems = workflow.check(document)
        if problems:  # a generator bug: never hand 8x8 a broken workflow
            raise InvalidInput("the generated workflow is malformed: " + "; ".join(problems))
        text = msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        elif not args.push:
            sys.stdout.write(text)
        if not auth:
            sys.stderr.write(
                "8x8 workflow: the Authorization header is a placeholder; put an ingest key "
                f"there (consent-ledger keys create --scopes ingest), or set {INGEST_KEY_ENV}\n"
            )
        if args.push:
            return _push(ledger, args, subaccount, document)
        return 0
    finally:
        ledger.close()


def _push(ledger: Any, args: argparse.Namespace, subaccount: str, document: dict[str, Any]) -> int:
    base = credentials.base_url(args.automation_url or credentials.AUTOMATION_URL)
    if args.dry_run:
        known = automation.previous(ledger, args.tenant, subaccount, args.account, args.channel)
        key = os.environ.get(credentials.KEY_ENV) or "not-set"
        emit(automation.request(base, args.account, key, document, known).shown())
        return 0
    pushed = automation.push(
        ledger,
        args.tenant,
        subaccount=subaccount,
        account=args.account,
        channel=args.channel,
        mode=args.mode,
        url=args.url,
        document=document,
        base=base,
        key=credentials.api_key(),
        actor=f"cli:{cli_user()}",
    )
    emit(pushed)
    return 0


def _fake(args: argparse.Namespace) -> int:
    from api.eightxeight.fake import FakeEightByEight

    fake = FakeEightByEight(
        host=args.host,
        port=args.port,
        api_key=os.environ.get(credentials.KEY_ENV) or None,
        dlr_url=args.dlr_url,
        dlr_authorization=args.dlr_authorization,
        seed=args.seed,
    )
    if args.faults:
        plan = msgspec.json.decode(args.faults)
        fake.script = list(plan.get("script", []))
        fake.random = dict(plan.get("random", {}))
        fake.refuse_rate = float(plan.get("refuse_rate", 0.0))
    fake.start()
    emit({"fake": fake.url, "records": f"{fake.url}/_fake/records"})
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


def _replies_set(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    try:
        off = args.off
        appended = replies.configure_replies(
            ledger,
            args.tenant,
            valid_subaccount(args.subaccount),
            actor=f"cli:{cli_user()}",
            opt_out=None if off else args.opt_out_reply,
            help=None if off else args.help_reply,
            opt_in=None if off else args.opt_in_reply,
            sender=args.sender,
            region=args.region,
            numbers=args.number or (),
        )
        emit(
            {
                "subaccount": args.subaccount,
                "position": appended.position,
                **msgspec.to_builtins(appended.stored.entry.event),
            }
        )
        return 0
    finally:
        ledger.close()


def _replies_show(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    try:
        found = replies.reply_settings(ledger.read_model, args.tenant, args.subaccount)
        counts = ledger.read_model.outbox_counts()
        emit(
            {
                "settings": found,
                "outbox": counts.counts,
                "oldest_pending_recorded_at": counts.oldest_open_recorded_at,
            }
        )
        return 0
    finally:
        ledger.close()


def _replies_run(args: argparse.Namespace) -> int:
    from api.eightxeight.dispatcher import Dispatcher, run

    ledger = open_ledger(args)
    dispatcher = Dispatcher(
        ledger,
        api_key=credentials.api_key(),
        timeout=args.timeout,
        concurrency=args.concurrency,
    )
    try:
        if args.once:
            dispatcher.run_once()
            dispatcher.wait()
        else:
            run(dispatcher, threading.Event(), tick=args.tick)
        emit(ledger.read_model.outbox_counts())
        return 0
    finally:
        dispatcher.close()
        ledger.close()


def _blacklist_set(args: argparse.Namespace) -> int:
    ledger = open_ledger(args)
    try:
        appended = replies.configure_blacklist(
            ledger,
            args.tenant,
            enabled=not args.off,
            account=args.account,
            region=args.region,
            actor=f"cli:{cli_user()}",
        )
        emit({"position": appended.position, **msgspec.to_builtins(appended.stored.entry.event)})
        return 0
    finally:
        ledger.close()


def add_parsers(sub: Subparsers) -> None:
    """Add the ``8x8`` command group."""
    group = sub.add_parser("8x8", help="connect 8x8: the workflow, replies, blacklist, a fake")
    commands = group.add_subparsers(dest="eightxeight", required=True)

    p = commands.add_parser(
        "workflow", help="write (and push) an Automation Builder workflow for a subaccount"
    )
    db_options(p)
    p.add_argument("--subaccount", required=True, help="the 8x8 subaccount it runs for")
    p.add_argument("--url", required=True, help="this service's base URL, as 8x8 reaches it")
    p.add_argument(
        "--mode",
        choices=("forward", "branch"),
        default="forward",
        help="forward every message (default) or only those holding a keyword",
    )
    p.add_argument("--channel", choices=("sms", "chatapps"), default="sms")
    p.add_argument("-o", "--output", help="write the definition to this file")
    p.add_argument(
        "--push",
        action="store_true",
        help=f"create or update it through 8x8's Automation API (key: ${credentials.KEY_ENV})",
    )
    p.add_argument("--account", help="the 8x8 account id (with --push)")
    p.add_argument("--dry-run", action="store_true", help="print the push request; send nothing")
    p.add_argument("--automation-url", help=f"default {credentials.AUTOMATION_URL}")
    p.set_defaults(handler=_workflow)

    p = commands.add_parser("fake", help="run a local fake of 8x8's APIs (tests, trying it out)")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dlr-url", help="where delivery receipts go (this service's webhook URL)")
    p.add_argument("--dlr-authorization", help="the Authorization header value receipts carry")
    p.add_argument(
        "--faults", help='JSON: {"script": [...], "random": {"429": 0.1}, "refuse_rate": 0.1}'
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_fake)

    p = commands.add_parser("replies", help="replies through 8x8's SMS API (off by default)")
    actions = p.add_subparsers(dest="replies_action", required=True)
    q = actions.add_parser("set", help="a subaccount's reply templates, sender and region")
    db_options(q)
    q.add_argument("--subaccount", required=True)
    q.add_argument("--opt-out-reply", help="the opt-out confirmation (one GSM-7 segment)")
    q.add_argument("--help-reply", help="the answer to HELP")
    q.add_argument("--opt-in-reply", help="the opt-in confirmation (optional)")
    q.add_argument("--sender", help="sender when the number texted is not known")
    q.add_argument("--region", choices=replies.REGIONS, default="ap", help="8x8 SMS API host")
    q.add_argument(
        "--number", action="append", help="a virtual number this subaccount owns (repeatable)"
    )
    q.add_argument("--off", action="store_true", help="turn every reply off")
    q.set_defaults(handler=_replies_set)
    q = actions.add_parser("show", help="a subaccount's reply settings and the outbox")
    db_options(q)
    q.add_argument("--subaccount", required=True)
    q.set_defaults(handler=_replies_show)
    q = actions.add_parser("run", help="dispatch replies (one dispatcher per deployment)")
    db_options(q)
    q.add_argument("--once", action="store_true", help="one pass, then exit")
    q.add_argument("--timeout", type=float, default=5.0, help="seconds per 8x8 call")
    q.add_argument("--concurrency", type=int, default=8)
    q.add_argument("--tick", type=float, default=0.2)
    q.set_defaults(handler=_replies_run)

    p = commands.add_parser("blacklist", help="sync tenant-wide opt-outs to 8x8's blacklist")
    actions = p.add_subparsers(dest="blacklist_action", required=True)
    q = actions.add_parser("set", help="turn the sync on (with --account) or --off")
    db_options(q)
    q.add_argument("--account", help="the 8x8 account id")
    q.add_argument("--region", choices=replies.REGIONS, default="ap", help="Contacts API host")
    q.add_argument("--off", action="store_true")
    q.set_defaults(handler=_blacklist_set)
