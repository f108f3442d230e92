"""CLI commands for tamper evidence: ``signing-key show``, ``checkpoint`` and ``verify``.

``verify`` guarantees: it exits 0 only if every entry, evidence row, tree node and checkpoint
verifies (``ledger.verify``), every checkpoint signature was checked against a verifier key, and
the projections equal a fresh replay of the log; otherwise it exits 1, names the first bad
position on stderr and lists the problems in the JSON it prints. It never writes to the database
(it reads one snapshot through a read-only connection, so appends go on meanwhile; a schema
behind this build is refused, not migrated) and never creates a signing key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

from api.cli.common import Subparsers, db_options, emit, key_options, open_ledger, settings_from
from api.cli.progress import phased_bar, quiet_option
from api.settings import Settings
from api.signing import signer_for
from ledger.checkpoint import load_or_create_signing_key, new_signing_key, parse_verifier_key
from ledger.entries import b64
from ledger.errors import InvalidInput
from ledger.files import make_private_dir
from ledger.verify import Report
from projections.engine import verify_store

PROGRESS_EVERY = 100_000
"""``verify --progress`` writes a progress line every this many entries (a terminal gets a bar
without it)."""


def _signing_key(args: argparse.Namespace) -> int:
    if args.action == "new":
        if not args.out:
            raise InvalidInput("signing-key new needs --out FILE (where the new key is written)")
        path = Path(args.out).expanduser()
        make_private_dir(path.parent)
        signer = new_signing_key(path, args.origin)
    else:
        signer = signer_for(settings_from(args))
    sys.stdout.write(signer.verifier_key + "\n")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ledger = open_ledger(args)
    record = ledger.sign_checkpoint(signer_for(settings), settings.origin)
    assert record is not None  # no min_interval: always a checkpoint covering the newest entry
    emit(
        {
            "size": record.size,
            "root": b64(record.root),
            "signed_at": record.signed_at,
            "note": record.note,
        }
    )
    return 0


# -- verify -------------------------------------------------------------------------------------


def verifier_key_for(args: argparse.Namespace, settings: Settings) -> str | None:
    """The verifier key to check checkpoints with: ``--key``, else the signing key file's if it
    exists (never created here), else ``None``. Raises ``InvalidInput`` for a malformed key."""
    if args.key:
        parse_verifier_key(args.key)
        return str(args.key).strip()
    if settings.signing_key is None and settings.location.path is None:
        return None  # a URL store keeps no key beside it
    path = settings.signing_key_path
    if path.exists():
        return load_or_create_signing_key(path, settings.origin).verifier_key
    return None


class _Progress:
    """Progress lines on stderr: ``verify: <phase> <done>/<total> (<pct>%) [<seconds>]``.

    ``enabled=None`` decides on the first report: on for a terminal or a long run.
    """

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """Write one progress line (when enabled)."""
        if self.enabled:
            sys.stderr.write(f"verify: {text} [{time.monotonic() - self.started:.1f} s]\n")
            sys.stderr.flush()

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Report every ``PROGRESS_EVERY`` entries and the end of every phase."""
        if not self.enabled or (done != total and (phase != "entries" or done % PROGRESS_EVERY)):
            return
        pct = 100 * done // total if total else 100
        unit = {"entries": "entries", "tree": "levels", "checkpoints": "checkpoints"}[phase]
        self.say(f"{phase}: {done:,}/{total:,} {unit} ({pct}%)")


def _summary(report: Report, differences: dict[str, int], verifier: str | None,
             seconds: float) -> dict[str, object]:  # fmt: skip
    unsigned = report.checkpoints > 0 and not report.signatures_checked
    return {
        "ok": report.ok and not differences and not unsigned,
        "entries": report.entries,
        "evidence_checked": report.evidence_checked,
        "evidence_erased": report.evidence_erased,
        "tree_nodes": report.tree_nodes,
        "checkpoints": report.checkpoints,
        "signatures_checked": report.signatures_checked,
        "verifier_key": verifier,
        "projections_match_rebuild": not differences,
        "projections_differing": differences,
        "first_bad_position": _first_bad(report, differences),
        "problem_count": report.problem_count,
        "problems": [{"position": p.position, "what": p.what} for p in report.problems],
        "seconds": round(seconds, 2),
    }


def _first_bad(report: Report, differences: dict[str, int]) -> int | None:
    named = [p for p in [report.first_bad_position, *differences.values()] if p]
    return min(named, default=None)


def _failure(report: Report, differences: dict[str, int]) -> str:
    """The one-line reason ``verify`` failed, naming the first bad position."""
    reasons = [(p.position, p.what) for p in report.problems]
    reasons += [(pos, f"projection {table} differs from a replay of the log (run `rebuild` "
                 "once the log verifies)") for table, pos in differences.items()]  # fmt: skip
    if not reasons:
        return (
            "FAILED: checkpoint signatures were not checked: no verifier key "
            "(pass --key VERIFIER_KEY, or --signing-key FILE)"
        )
    position, what = min(reasons, key=lambda r: r[0])
    more = report.problem_count + len(differences) - 1
    also = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
    at = f" at position {position}" if position > 0 else ""
    return f"FAILED{at}: {what}{also}"


def _verify(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    verifier = verifier_key_for(args, settings)
    progress = _Progress(args.progress)
    with phased_bar("verify", quiet=args.quiet or args.progress is not None) as bar:
        found = verify_store(settings.location, verifier, progress if args.progress else bar)
    report, differences, conflicts = found.report, found.differences, found.conflicts
    result = _summary(report, differences, verifier, time.monotonic() - progress.started)
    if conflicts:  # reported, not a failure: see projections.config.PolicyConflict
        result["policy_version_conflicts"] = msgspec.to_builtins(conflicts)
    progress.say("done" if result["ok"] else "FAILED")
    emit(result)
    if not result["ok"]:
        sys.stderr.write(f"consent-ledger verify: {_failure(report, differences)}\n")
        return 1
    return 0


def add_parsers(sub: Subparsers) -> None:
    """Add ``signing-key show``, ``checkpoint`` and ``verify``."""
    p = sub.add_parser(
        "signing-key",
        help="print the checkpoint verifier key (show), or make a new signing key file (new)",
        description="show: print the verifier key of the deployment's signing key. new --out "
        "FILE: create a new Ed25519 signing key file (0600, never overwriting one) and print "
        "its verifier key; a PostgreSQL deployment gives that file to every node with "
        "--signing-key.",
    )
    p.add_argument("action", choices=["show", "new"])
    p.add_argument("--out", help="new: the key file to create")
    db_options(p)
    key_options(p)
    p.set_defaults(handler=_signing_key)
    p = sub.add_parser("checkpoint", help="sign a checkpoint covering the newest entry")
    db_options(p)
    key_options(p)
    p.set_defaults(handler=_checkpoint)
    p = sub.add_parser(
        "verify",
        help="verify the whole database (entries, evidence, tree, checkpoints, projections)",
        description="Re-hash every entry, check indexed columns and evidence against the bytes, "
        "rebuild the Merkle tree, check every checkpoint's signature and consistency, and "
        "compare the projections with a replay. Prints a JSON report; exits 1 on any failure, "
        "naming the first bad position on stderr. Read-only: appends go on meanwhile.",
    )
    db_options(p)
    key_options(p)
    p.add_argument(
        "--key",
        metavar="VERIFIER_KEY",
        help="check checkpoint signatures with this verifier key (as printed by `signing-key "
        "show`; default: the signing key file's, if it exists)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress lines on stderr every {PROGRESS_EVERY:,} entries, even off a terminal "
        "(default: a progress bar on a terminal, nothing otherwise)",
    )
    quiet_option(p)
    p.set_defaults(handler=_verify)
