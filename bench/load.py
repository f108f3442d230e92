"""Bulk loader: fill a database with N real entries fast, for the benchmark, ``verify`` and proofs.

Not over HTTP: drafts are generated here and appended through the ledger's own store (the
``append`` of the adapter the location names, SQLite's or PostgreSQL's, with every projector),
``--batch`` drafts per call, so the entries, their evidence, the Merkle tree nodes and the
projections are exactly what live intake writes.

The mix: a few subaccounts configured first, then opt-outs (~60 %, some STOPALL tenant-wide),
opt-ins (~25 %) and HELP (~15 %), each with 8x8-style evidence. Entry ``i`` is about number
``number(i % numbers)``, so a log of at least ``--numbers`` entries has exactly ``--numbers``
distinct numbers on file. ``AUDIT_NUMBER`` gets ``--audit-entries`` entries (STOP and START on
ACME_MKT) spread evenly through the log. Prints one JSON document with the timings. Keep big
databases under /tmp.

With ``--measure`` it then times ``consent-ledger verify`` on the database (a subprocess, wall
clock) and inclusion/consistency proofs at its full size (in-process, from the stored tree);
on an existing database ``--measure`` skips the loading (SQLite only; ``bench/run.py`` times
``verify`` on either engine).

    python bench/load.py /tmp/ledger-1m.db --entries 1000000 --numbers 1000000 --measure
    python bench/load.py 'postgresql://USER@HOST/DB?options=-csearch_path%3Dmy_schema' \
        --entries 100000   # into an empty schema
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.cli.progress import progress_bar
from ledger import merkle
from ledger.entries import Evidence
from ledger.events import ConsentGranted, ConsentRevoked, Event, HelpRequested
from ledger.location import parse_location
from ledger.sqlite import tree
from ledger.sqlite.connection import connect
from ledger.store import Draft
from projections.ledger import ConsentLedger

TENANT = "default"
SUBACCOUNTS = ("ACME_MKT", "ACME_ALERTS", "ACME_PROMO", "ACME_NEWS")
START = datetime(2025, 1, 1, tzinfo=UTC)
AUDIT_NUMBER = "+6581234567"
"""The number whose audit trail the benchmark reads (``--audit-entries`` entries on ACME_MKT)."""
SPAN = 9_000_000
"""How many numbers ``number`` can give: +659 and 7 digits, +6590000000 .. +6598999999."""
_KINDS = ("stop",) * 55 + ("stopall",) * 5 + ("start",) * 25 + ("help",) * 15


def number(index: int) -> str:
    """The ``index``-th number on file: distinct for distinct ``index`` below 9,000,000, and
    always a valid Singapore mobile number."""
    return f"+659{(index * 7919 + 12345) % SPAN:07d}"


def _event(kind: str, sub: str) -> tuple[Event, str]:
    """One event of ``kind`` and the message text that caused it."""
    common = {"match": "exact", "policy": f"{sub}@1", "channel": "sms", "method": "8x8-webhook",
              "actor": "data-subject"}  # fmt: skip
    if kind == "stopall":
        return ConsentRevoked(scope="tenant", keyword="STOPALL", **common), "STOPALL"  # type: ignore[arg-type]
    if kind == "stop":
        return ConsentRevoked(scope="subaccount", keyword="STOP", **common), "STOP"  # type: ignore[arg-type]
    if kind == "start":
        return ConsentGranted(scope="subaccount", keyword="START", **common), "START"  # type: ignore[arg-type]
    return HelpRequested(keyword="HELP", **common), "HELP"  # type: ignore[arg-type]


def _body(umid: str, sub: str, msisdn: str, text: str, when: str) -> str:
    return json.dumps(
        {
            "namespace": "SMS",
            "eventType": "inbound_message_received",
            "description": "An inbound message",
            "payload": {
                "umid": umid,
                "subAccountId": sub,
                "timestamp": when,
                "source": msisdn,
                "destination": "+6580000000",
                "body": text,
                "encoding": "GSM7",
                "smsCount": 1,
            },
        },
        separators=(",", ":"),
    )


def drafts(
    count: int,
    numbers: int,
    seed: int,
    first: int = 0,
    total: int | None = None,
    audit_entries: int = 0,
) -> list[Draft]:
    """Drafts for entries ``first`` .. ``first + count - 1`` of a log of ``total``, in
    occurred-time order; entry ``i`` is about ``number(i % numbers)`` unless it is one of the
    ``audit_entries`` evenly spaced entries about ``AUDIT_NUMBER``."""
    rng = random.Random(seed)
    total = total or count
    step = timedelta(days=365) / max(total, 1)
    every = total // audit_entries if audit_entries else 0
    out = []
    for i in range(first, first + count):
        sub = rng.choice(SUBACCOUNTS)
        kind = rng.choice(_KINDS)
        msisdn = number(i % numbers)
        if every and i % every == every // 2 and i // every < audit_entries:
            sub, msisdn = "ACME_MKT", AUDIT_NUMBER
            kind = "stop" if (i // every) % 2 == 0 else "start"
        event, text = _event(kind, sub)
        when = (START + step * i).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        umid = str(uuid.UUID(int=rng.getrandbits(128)))
        evidence = Evidence(
            raw_body=_body(umid, sub, msisdn, text, when),
            text=text,
            remote_addr="203.0.113.7",
            request_id=f"req-{i}",
            content_type="application/json",
            key_id="0123456789ab",
        )
        out.append(
            Draft(
                tenant=TENANT,
                key=f"8x8:{umid}",
                subaccount=sub,
                msisdn=msisdn,
                occurred_at=when,
                event=event,
                evidence=evidence,
            )
        )
    return out


def load(
    path: Path | str,
    entries: int,
    numbers: int,
    batch: int,
    seed: int,
    audit_entries: int = 0,
    quiet: bool = False,
) -> dict[str, float]:
    """Append ``entries`` entries (configuration first) to ``path`` (a SQLite path, or any
    store location ``--db`` takes: a PostgreSQL URL too); returns timings."""
    ledger = ConsentLedger(path)
    if ledger.location.engine == "sqlite":
        # A bigger page cache for the loader's writer only (1 GiB): the random idempotency keys
        # and numbers make index inserts random, and a small cache turns them into reads.
        ledger.store._wconn.execute("PRAGMA cache_size = -1048576")  # type: ignore[attr-defined]
    started = time.perf_counter()
    generating = appending = 0.0
    total = entries - len(SUBACCOUNTS)
    try:
        for sub in SUBACCOUNTS:
            ledger.configure_subaccount(TENANT, sub, actor="bench", default_region="SG")
        left, done = total, 0
        with progress_bar("load", total, "entries", quiet=quiet) as bar:
            while left > 0:
                n = min(batch, left)
                t0 = time.perf_counter()
                batch_drafts = drafts(n, numbers, seed + done, done, total, audit_entries)
                t1 = time.perf_counter()
                ledger.append(batch_drafts)
                t2 = time.perf_counter()
                generating, appending = generating + t1 - t0, appending + t2 - t1
                left, done = left - n, done + n
                bar.update(done)
        head = ledger.head()
    finally:
        ledger.close()
    total = time.perf_counter() - started
    return {
        "entries": head,
        "seconds": round(total, 1),
        "generate_seconds": round(generating, 1),
        "append_seconds": round(appending, 1),
        "entries_per_second": round(head / total),
    }


def measure(path: Path, samples: int = 1000) -> dict[str, object]:
    """Time ``consent-ledger verify`` and proofs at the database's full size."""
    cli = Path(sys.executable).with_name("consent-ledger")
    started = time.perf_counter()
    done = subprocess.run(
        [str(cli), "verify", "--db", str(path), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    verify_seconds = time.perf_counter() - started
    report = json.loads(done.stdout)
    conn = connect(path, readonly=True)
    try:
        size = tree.tree_size(conn)
        root = tree.root(conn, size)
        rng = random.Random(7)
        inclusion, consistency = [], []
        for _ in range(samples):
            position = rng.randint(1, size)
            t0 = time.perf_counter()
            proof = tree.inclusion_proof(conn, position, size)
            inclusion.append(time.perf_counter() - t0)
            leaf = conn.execute("SELECT leaf_hash FROM log WHERE position = ?", (position,))
            assert merkle.verify_inclusion(position - 1, size, leaf.fetchone()[0], proof, root)
            t0 = time.perf_counter()
            tree.consistency_proof(conn, rng.randint(1, size), size)
            consistency.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return {
        "verify_seconds": round(verify_seconds, 1),
        "verify_exit": done.returncode,
        "verify_ok": report["ok"],
        "tree_size": size,
        "inclusion_proof_ms_median": round(statistics.median(inclusion) * 1000, 3),
        "inclusion_proof_ms_max": round(max(inclusion) * 1000, 3),
        "consistency_proof_ms_median": round(statistics.median(consistency) * 1000, 3),
    }


def main() -> int:
    """Parse arguments, load, print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", help="database file (created; must not exist), or a PostgreSQL URL")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--numbers", type=int, default=200_000, help="distinct msisdns")
    parser.add_argument("--audit-entries", type=int, default=50, help="entries of AUDIT_NUMBER")
    parser.add_argument("--batch", type=int, default=5_000, help="drafts per append call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--measure", action="store_true", help="then time verify and proofs")
    args = parser.parse_args()
    result: dict[str, object] = {}
    where = parse_location(args.db)
    if where.path is None or not where.path.exists():
        result["load"] = load(
            args.db, args.entries, args.numbers, args.batch, args.seed, args.audit_entries
        )
    elif not args.measure:
        parser.error(f"{args.db} exists; the loader only fills a new database")
    if args.measure:
        if where.path is None:
            parser.error("--measure times a SQLite database")
        result["measure"] = measure(where.path)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
