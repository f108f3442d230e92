"""Benchmark steps of adoption (docs/adopting.md): import rows/s into the benchmark's log beside
the raw append baseline of the same run, export numbers/s, and webhook p99 during an import
against without one.

The import and the baseline each add ``rows`` entries of new numbers to the log (so the log is
that much bigger for what runs after them); the baseline appends the very drafts an import
makes, in the import's batch size, through ``ConsentLedger.append`` (no reading, no parsing,
no checks): what the store alone costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import server

from ledger.store import Draft
from projections.imports import BATCH_ROWS, ImportOptions, import_file, read_drafts, source_file
from projections.ledger import ConsentLedger

CLI = Path(sys.executable).with_name("consent-ledger")
SUBACCOUNT = "ACME_MKT"
FIRST_NEW = 81_000_000
"""Imported numbers are +65 and 81,000,000 + the log's head + i: never on the loader's list
(+659…), and new for every list while the log stays under 9,000,000 entries."""


def write_list(path: Path, rows: int, db: Path) -> Path:
    """A headerless list of ``rows`` numbers new to ``db`` (each line an opt-out): numbered from
    the log's head, which grows by at least ``rows`` with each list imported."""
    ledger = ConsentLedger(db)
    try:
        offset = ledger.head()
    finally:
        ledger.close()
    with path.open("w") as handle:
        for i in range(rows):
            handle.write(f"+65{FIRST_NEW + offset + i}\n")
    return path


def _options() -> ImportOptions:
    return ImportOptions(
        tenant="default", recorded_by="cli:bench", subaccount=SUBACCOUNT, as_of="2024-01-01"
    )


def baseline(db: Path, work: Path, rows: int) -> dict[str, Any]:
    """Entries/s of ``ConsentLedger.append`` of the drafts an import of ``rows`` rows makes, in
    batches of the import's size (the drafts are made before the clock starts)."""
    source = source_file(write_list(work / "baseline.csv", rows, db))
    ledger = ConsentLedger(db)
    try:
        drafts = [d for d in read_drafts(ledger, source, "csv", _options()) if isinstance(d, Draft)]
        started = time.perf_counter()
        for start in range(0, len(drafts), BATCH_ROWS):
            ledger.append(drafts[start : start + BATCH_ROWS])
        elapsed = time.perf_counter() - started
        head = ledger.head()
    finally:
        ledger.close()
    return {"entries": rows, "seconds": round(elapsed, 2), "entries_per_s": round(rows / elapsed),
            "log_entries_after": head}  # fmt: skip


def import_rate(db: Path, work: Path, rows: int) -> dict[str, Any]:
    """Rows/s of an import of ``rows`` new numbers (in-process, as the CLI runs it)."""
    source = source_file(write_list(work / "import.csv", rows, db))
    ledger = ConsentLedger(db)
    try:
        before = ledger.head()
        started = time.perf_counter()
        summary = import_file(ledger, source, "csv", _options())
        elapsed = time.perf_counter() - started
    finally:
        ledger.close()
    return {
        "rows": rows,
        "recorded": summary.recorded,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "log_entries_before": before,
    }


def export_rate(db: Path) -> dict[str, Any]:
    """Numbers/s of ``consent-ledger export --subaccount ACME_MKT`` (a subprocess, CSV to a
    pipe, as users run it)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(CLI), "export", "--subaccount", SUBACCOUNT, "--db", str(db)],
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    numbers = done.stdout.count(b"\n") - 1
    return {"numbers": numbers, "seconds": round(elapsed, 2),
            "numbers_per_s": round(numbers / elapsed)}  # fmt: skip


def webhook_during_import(
    db: Path, work: Path, key: str, rows: int, duration: float, connections: int, workers: int
) -> dict[str, Any]:
    """Webhook p99 with no import running, then while ``consent-ledger import`` runs (the
    same server, the same load)."""
    port = server.free_port()
    argv = [str(CLI), "serve", "--db", str(db), "--port", str(port), "--workers", str(workers)]
    env = {"CL_KEY": key, "CL_SUBACCOUNT": SUBACCOUNT}
    source = write_list(work / "during.csv", rows, db)
    with server.running(argv, port, workers, work / "adopt-serve.stderr") as srv:
        alone = server.wrk(srv.url, script="webhook.lua", duration=duration,
                           connections=connections, env={**env, "CL_RUN": "alone"})  # fmt: skip
        importing = subprocess.Popen(
            [str(CLI), "import", str(source), "--subaccount", SUBACCOUNT, "--as-of",
             "2024-01-01", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        during = server.wrk(srv.url, script="webhook.lua", duration=duration,
                            connections=connections, env={**env, "CL_RUN": "during"})  # fmt: skip
        still_running = importing.poll() is None
        out, _ = importing.communicate(timeout=600)
    summary = json.loads(out)
    return {
        "alone": alone,
        "during_import": during,
        "import_covered_the_load": still_running,
        "import": summary,
    }
