"""The ``serve`` command: its options, read into ``Settings``; running the server is
``api.serve``'s job.

Guarantees: an option given on the command line overrides its ``CONSENT_LEDGER_*`` variable; a
bad setting, from either, is one line on stderr before anything starts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import msgspec

from api.cli.common import Subparsers, db_option
from ledger.errors import InvalidInput
from ledger.location import parse_location


def _serve(args: argparse.Namespace) -> int:
    from api import serve  # the server machinery: only this command needs it
    from api.settings import ENV_PREFIX, Settings

    given = {
        "db": _absolute(args.db),
        "origin": args.origin,
        "checkpoint_interval": args.checkpoint_interval,
        "log_format": args.log_format,
        "metrics": args.metrics,
        "reader_threads": args.reader_threads,
        "writer_threads": args.writer_threads,
        "pool_size": args.pool_size,
        "signing_key": _key_path(args.signing_key),
    }
    env = dict(os.environ)
    env.update({ENV_PREFIX + k.upper(): str(v) for k, v in given.items() if v is not None})
    try:
        settings = Settings.from_env(env)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"bad setting ({ENV_PREFIX}* or option): {exc}") from exc
    return serve.serve(settings, host=args.host, port=args.port, workers=args.workers)


def _absolute(db: str) -> str:
    """``db`` for the workers: a SQLite path made absolute, a URL as given."""
    location = parse_location(db)
    return str(location.path.resolve()) if location.path is not None else db


def _key_path(given: str | None) -> str | None:
    return str(Path(given).expanduser().resolve()) if given else None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parsers(sub: Subparsers) -> None:
    """Add ``serve``."""
    p = sub.add_parser("serve", help="run the HTTP service (uvicorn, several workers)")
    db_option(p)
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
    p.add_argument(
        "--pool-size",
        type=_positive,
        help="PostgreSQL: reading connections per worker (default 4; each worker also has one "
        "writer connection)",
    )
    p.add_argument("--origin", help="checkpoint origin line (default consent-ledger)")
    p.add_argument(
        "--signing-key",
        metavar="FILE",
        help="Ed25519 checkpoint signing key (env CONSENT_LEDGER_SIGNING_KEY; SQLite default "
        "<db>.signing-key, created on first start; PostgreSQL: required to sign, never created)",
    )
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
    p.set_defaults(handler=_serve)
