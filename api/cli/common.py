"""What every command group of the command line shares: the database and tenant options, the
signing-key options, opening the ledger, and printing JSON.

Guarantees: every command that touches the database names it the same way (``--db``, default
``$CONSENT_LEDGER_DB``, then ``~/.local/share/consent-ledger/ledger.db``) and opens it through
``open_ledger``; everything printed with ``emit`` is one line of JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import msgspec

from api.settings import Settings
from projections.ledger import ConsentLedger
from projections.ledger import open_ledger as open_ledger_at

DEFAULT_DB = Path("~/.local/share/consent-ledger/ledger.db")
Handler = Callable[[argparse.Namespace], int]
"""Runs one parsed command; returns the exit code (a parser sets it as its ``handler``)."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command group adds its parsers (``add_parsers(subparsers)``)."""


def default_db() -> str:
    """The store used when ``--db`` is not given."""
    return os.environ.get("CONSENT_LEDGER_DB") or str(DEFAULT_DB.expanduser())


def db_option(p: argparse.ArgumentParser) -> None:
    """Add ``--db`` (default ``$CONSENT_LEDGER_DB``, then the default path)."""
    p.add_argument(
        "--db",
        default=default_db(),
        help="the store: a SQLite file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
        "(env CONSENT_LEDGER_DB)",
    )


def db_options(p: argparse.ArgumentParser) -> None:
    """Add ``--db`` and ``--tenant`` (default ``default``)."""
    db_option(p)
    p.add_argument("--tenant", default="default", help="tenant id (default: default)")


def key_options(p: argparse.ArgumentParser) -> None:
    """Add ``--origin`` and ``--signing-key`` (read by ``settings_from``)."""
    p.add_argument("--origin", default="consent-ledger", help="checkpoint origin / key name")
    p.add_argument(
        "--signing-key",
        help="Ed25519 key file (default: <db>.signing-key beside the database; "
        "env CONSENT_LEDGER_SIGNING_KEY)",
        default=None,
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings for the database and key named on the command line (or the environment)."""
    key = args.signing_key or os.environ.get("CONSENT_LEDGER_SIGNING_KEY")
    return Settings(
        db=args.db,
        origin=args.origin,
        signing_key=Path(key).expanduser() if key else None,
    )


def open_ledger(args: argparse.Namespace) -> ConsentLedger:
    """Open (creating privately and migrating if needed) the database named by ``args.db``:
    every command that opens the ledger does it here (``projections.ledger.open_ledger``)."""
    return open_ledger_at(args.db)


def emit(value: object) -> None:
    """Print ``value`` as one line of JSON."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
