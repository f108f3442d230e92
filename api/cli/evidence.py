"""CLI commands for evidence bundles: ``evidence`` and ``verify-bundle``.

Guarantees: ``evidence`` writes one self-contained JSON bundle (and optionally its printable
HTML) signed against a checkpoint made now, then prints a one-line JSON summary; it writes each
file completely or not at all, readable by its owner only (mode 0600, replacing the file through
a private temporary file beside it, never following a symlink); an output it cannot write is
reported (one line) before the database is opened. ``verify-bundle`` opens no database and uses
no network: it exits 0 and prints one ``OK`` line when every check passes, or exits 1 and prints
one line naming the first failure (2 when the file cannot be read).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from api.bundle_html import render_html
from api.cli.common import Subparsers, db_options, emit, key_options, open_ledger, settings_from
from api.signing import signer_for
from ledger.errors import InvalidInput
from ledger.files import PrivateReplacement
from projections.bundle_verify import BundleInvalid, verify_bundle
from projections.evidence import build_bundle, encode_bundle
from projections.ids import valid_subaccount


def _evidence(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with ExitStack() as outputs:
        json_file = None if args.output == "-" else outputs.enter_context(_output(args.output))
        html_file = outputs.enter_context(_output(args.html)) if args.html else None
        ledger = open_ledger(args)
        try:
            valid_subaccount(args.subaccount)
            msisdn = ledger.normalize_msisdn(args.tenant, args.subaccount, args.msisdn)
            signer = signer_for(settings)
            bundle = build_bundle(
                ledger, signer, settings.origin, args.tenant, args.subaccount, msisdn
            )
        finally:
            ledger.close()
        document = encode_bundle(bundle)
        if json_file is None:
            sys.stdout.buffer.write(document)
        else:
            _publish(json_file, document)
        if html_file is not None:
            _publish(html_file, render_html(bundle).encode())
    if args.output != "-":
        emit(
            {
                "bundle": args.output,
                "html": args.html,
                "msisdn": msisdn,
                "subaccount": args.subaccount,
                "entries": len(bundle.entries),
                "checkpoint_size": bundle.checkpoint.size,
                "verifier_key": bundle.checkpoint.verifier_key,
                "state": bundle.decision["state"],
                "allowed": bundle.decision["allowed"],
            }
        )
    return 0


def _verify_bundle(args: argparse.Namespace) -> int:
    try:
        document = Path(args.file).read_bytes()
    except OSError as exc:
        sys.stderr.write(f"consent-ledger verify-bundle: cannot read {args.file}: {exc}\n")
        return 2
    try:
        verified = verify_bundle(document, args.key)
    except BundleInvalid as exc:
        sys.stderr.write(f"consent-ledger verify-bundle: FAILED: {exc}\n")
        return 1
    sys.stdout.write(verified.summary() + "\n")
    return 0


def _output(name: str) -> PrivateReplacement:
    """A private replacement of output file ``name``, made ready before anything is signed."""
    path = Path(name).expanduser()
    try:
        return PrivateReplacement(path)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from exc


def _publish(output: PrivateReplacement, data: bytes) -> None:
    try:
        output.publish(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {output.path}: {exc.strerror or exc}") from exc


def add_parsers(sub: Subparsers) -> None:
    """Add ``evidence`` and ``verify-bundle``."""
    p = sub.add_parser(
        "evidence",
        help="write an offline-verifiable evidence bundle for a number and subaccount",
    )
    p.add_argument("msisdn", help="the number (E.164, 00-prefixed, or national digits)")
    p.add_argument("--subaccount", required=True)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the JSON bundle ('-' for stdout)")  # fmt: skip
    p.add_argument("--html", metavar="FILE", help="also write a printable HTML rendering")
    db_options(p)
    key_options(p)
    p.set_defaults(handler=_evidence)
    p = sub.add_parser(
        "verify-bundle",
        help="verify an evidence bundle offline (no database): signature, proofs, evidence, "
        "decision",
    )
    p.add_argument("file", help="the JSON bundle")
    p.add_argument("--key", required=True, metavar="VERIFIER_KEY",
                   help="the log's verifier key (consent-ledger signing-key show)")  # fmt: skip
    p.set_defaults(handler=_verify_bundle)
