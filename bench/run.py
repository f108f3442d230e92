"""The benchmark suite: every figure of issue 5 beside its baseline, measured in the same run.

    ./dev bench            # the full run (1,000,000-entry log; under 10 minutes on 2 cores)
    ./dev bench --quick    # a small log and short loads (under a minute)

Steps: build a log with the bulk loader (``bench/load.py``: not over HTTP); time
``consent-ledger verify`` and a projection rebuild on it; time the raw ``sqlite3`` point-lookup
baseline; time durable in-process appends against the ``eventsourcing`` library's SQLite
recorder; start the hello-world baseline (``bench/hello_app.py``) and then the real server
(``consent-ledger serve``, production settings, ``--workers`` processes) on loopback and drive
them with wrk and the Lua scripts in ``bench/wrk/``. Prints a Markdown table (figure, baseline,
ratio, goal, PASS/MISS) and writes everything measured to ``bench/results/<timestamp>.json``.

Needs wrk (Debian/Ubuntu: ``apt-get install wrk``); without it the script stops and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ledger.sqlite.keys import SqliteKeys

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adopt  # noqa: E402
import console  # noqa: E402
import inproc  # noqa: E402
import load  # noqa: E402
import server  # noqa: E402

from ledger.sqlite.connection import connect  # noqa: E402

CLI = Path(sys.executable).with_name("consent-ledger")
SUBACCOUNT = "ACME_MKT"
BULK_SIZE = 10_000
BULK_LISTS = 20
BULK_CONNECTIONS_PER_WORKER = 4
"""Bulk loads use this many connections per worker: the kernel spreads connections over the
workers by a hash, and with one per worker both land on the same worker half the time."""


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


# -- the table ---------------------------------------------------------------------------------
@dataclass
class Row:
    """One figure: its value, its baseline (if any) and whether it meets its goal."""

    figure: str
    value: str
    baseline: str
    ratio: float | None
    goal: str
    ok: bool | None


def _n(x: float, unit: str = "") -> str:
    return f"{x:,.0f}{unit}"


def _ms(x: float) -> str:
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| figure | value | baseline (same run) | ratio | goal | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        result = "—" if r.ok is None else ("PASS" if r.ok else "**MISS**")
        lines.append(f"| {r.figure} | {r.value} | {r.baseline} | {ratio} | {r.goal} | {result} |")
    return "\n".join(lines)


def rows_of(m: dict[str, Any], a: argparse.Namespace) -> list[Row]:
    """The issue's figures, from what was measured (``m``)."""
    rows: list[Row] = []
    http = m.get("http", {})
    hello = m.get("hello", {})
    if "webhook" in http:
        w, h = http["webhook"], hello["post"]
        ratio = w["requests_per_s"] / h["requests_per_s"]
        c = a.connections
        rows += [
            Row(
                f"webhook intake, unique 8x8 bodies, {c} connections: req/s",
                _n(w["requests_per_s"]),
                _n(h["requests_per_s"]) + " (hello POST)",
                ratio,
                "≥ 0.4 × baseline",
                ratio >= 0.4,
            ),
            Row("… p50", _ms(w["p50_ms"]), _ms(h["p50_ms"]), None, "—", None),
            Row("… p99", _ms(w["p99_ms"]), _ms(h["p99_ms"]), None, "≤ 50 ms", w["p99_ms"] <= 50),
        ]
    if "decision" in http:
        d, h = http["decision"], hello["get"]
        ratio = d["requests_per_s"] / h["requests_per_s"]
        rows += [
            Row(
                f"single decision GET /v1/consent/…, {a.connections} connections: req/s",
                _n(d["requests_per_s"]),
                _n(h["requests_per_s"]) + " (hello GET)",
                ratio,
                "≥ 0.6 × baseline",
                ratio >= 0.6,
            ),
            Row("… p99", _ms(d["p99_ms"]), _ms(h["p99_ms"]), None, "≤ 20 ms", d["p99_ms"] <= 20),
        ]
    if "bulk" in http:
        b, raw = http["bulk"], m["raw_lookups"]
        rate, base = b["numbers_per_s"], raw["numbers_per_s"]
        rows.append(
            Row(
                f"bulk decision, {BULK_SIZE:,} numbers per request, "
                f"{m['log']['numbers_on_file']:,} numbers on file: numbers/s",
                _n(rate),
                _n(base) + " (raw sqlite3 loop)",
                rate / base,
                "≥ 250,000/s and ≥ 1.0 × baseline",
                rate >= 250_000 and rate >= base,
            )
        )
    if "bulk_national" in http:
        b = http["bulk_national"]
        rows.append(
            Row(
                "… lists of new numbers as national digits (full parsing): numbers/s",
                _n(b["numbers_per_s"]),
                "—",
                None,
                "— (answers checked equal)",
                None,
            )
        )
    if "appends" in m:
        ap = m["appends"]
        o1, t1, o8, t8 = ap["ours_1"], ap["theirs_1"], ap["ours_8"], ap["theirs_8"]
        rows += [
            Row(
                "in-process append, one writer, durable, one entry per call: entries/s",
                _n(o1["entries_per_s"]),
                _n(t1["entries_per_s"]) + " (eventsourcing)",
                o1["entries_per_s"] / t1["entries_per_s"],
                "≥ 1.0 × baseline",
                o1["entries_per_s"] >= t1["entries_per_s"],
            ),
            Row(
                "in-process append, 8 concurrent writers, durable: entries/s",
                _n(o8["entries_per_s"]),
                _n(t8["entries_per_s"]) + " (eventsourcing)",
                o8["entries_per_s"] / t8["entries_per_s"],
                "≥ 10,000/s",
                o8["entries_per_s"] >= 10_000,
            ),
        ]
    size = m.get("log", {}).get("entries", 0)
    if "rebuild" in m:
        rate = m["rebuild"]["entries_per_s"]
        rows.append(
            Row(
                f"projection rebuild from a {size:,}-entry log: entries/s",
                _n(rate),
                "—",
                None,
                "≥ 100,000/s",
                rate >= 100_000,
            )
        )
    if "audit" in http:
        p99 = http["audit"]["p99_ms"]
        rows.append(
            Row(
                f"audit trail for one number ({a.audit_entries} entries) in a {size:,}-entry "
                f"log, via HTTP ({a.audit_connections} connection): p99",
                _ms(p99),
                "—",
                None,
                "≤ 10 ms",
                p99 <= 10,
            )
        )
    if "console" in m:
        c = m["console"]
        rows.append(
            Row(
                f"console number page for one number ({c['entries_shown']} entries) in a "
                f"{size:,}-entry log, server time (look-up and render, in-process): p99",
                _ms(c["p99_ms"]),
                "—",
                None,
                "≤ 100 ms",
                c["p99_ms"] <= 100,
            )
        )
    if "verify" in m:
        s = m["verify"]["seconds"]
        rows.append(
            Row(
                f"consent-ledger verify of a {size:,}-entry log",
                f"{s:.1f} s",
                "—",
                None,
                "≤ 30 s",
                s <= 30 and m["verify"]["ok"],
            )
        )
    if "memory_after_bulk" in http:
        rss = http["memory_after_bulk"]["rss_mib"]
        rows.append(
            Row(
                f"resident memory of the server ({a.workers} workers, all processes) after the "
                "bulk run",
                f"{rss:,.0f} MiB",
                "—",
                None,
                "≤ 400 MiB",
                rss <= 400,
            )
        )
    return rows + adopt_rows(m.get("adopt", {}))


def adopt_rows(m: dict[str, Any]) -> list[Row]:
    """Import, export and webhooks during an import (docs/adopting.md)."""
    rows: list[Row] = []
    if "import" in m:
        rate, base = m["import"]["rows_per_s"], m["baseline"]["entries_per_s"]
        size = m["import"]["log_entries_before"]
        rows.append(
            Row(
                f"import of {m['import']['rows']:,} new opt-outs into a {size:,}-entry log: rows/s",
                _n(rate),
                f"{_n(base)} (raw append of the same drafts)",
                rate / base,
                "≥ 50,000/s",
                rate >= 50_000,
            )
        )
    if "export" in m:
        e = m["export"]
        rows.append(
            Row(
                f"export of a suppression list ({e['numbers']:,} numbers), CSV: numbers/s",
                _n(e["numbers_per_s"]),
                "—",
                None,
                "≥ 100,000/s (1,000,000 in ≤ 10 s)",
                e["numbers_per_s"] >= 100_000,
            )
        )
    if "webhook" in m:
        during, alone = m["webhook"]["during_import"]["p99_ms"], m["webhook"]["alone"]["p99_ms"]
        rows.append(
            Row(
                "webhook p99 during an import (vs. without, same server and load)",
                _ms(during),
                _ms(alone),
                during / alone,
                "≤ 2 × without",
                during <= 2 * alone,
            )
        )
    return rows


def cpu_table(m: dict[str, Any]) -> str:
    """Server CPU time per request (all server processes), a hint at where time goes."""
    lines = ["| load | requests/s | server CPU per request |", "|---|---:|---:|"]
    for group, name in (("hello", "get"), ("hello", "post"), ("http", "decision"),
                        ("http", "webhook"), ("http", "bulk"), ("http", "audit")):  # fmt: skip
        f = m.get(group, {}).get(name)
        if f and f.get("cpu_us_per_request"):
            lines.append(
                f"| {group} {name} | {f['requests_per_s']:,.0f} | "
                f"{f['cpu_us_per_request']:,.0f} µs |"
            )
    return "\n".join(lines)


# -- steps -------------------------------------------------------------------------------------
def build_log(a: argparse.Namespace, db: Path) -> dict[str, Any]:
    """Fill ``db`` with the bulk loader (or reuse it)."""
    if db.exists():
        say(f"reusing {db}")
        conn = connect(db, readonly=True)
        try:
            head = conn.execute("SELECT max(position) FROM log").fetchone()[0]
        finally:
            conn.close()
        return {"entries": head, "reused": True}
    say(f"loading {a.log_size:,} entries ({a.numbers:,} numbers) into {db}")
    timings = load.load(
        db, a.log_size, a.numbers, 5_000, 1, audit_entries=a.audit_entries, quiet=a.quick
    )
    return {**timings, "reused": False}


def verify(db: Path) -> dict[str, Any]:
    """Wall-clock seconds of ``consent-ledger verify`` (a subprocess, as users run it)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(CLI), "verify", "--db", str(db), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return {"seconds": round(seconds, 2), "exit": done.returncode, "ok": bool(report.get("ok"))}


def bulk_lists(numbers_on_file: int, seed: int = 5, count: int = BULK_LISTS) -> list[list[str]]:
    """``count`` lists of ``BULK_SIZE`` random numbers on file (canonical E.164)."""
    rng = random.Random(seed)
    return [
        [load.number(rng.randrange(numbers_on_file)) for _ in range(BULK_SIZE)]
        for _ in range(count)
    ]


def write_bodies(lists: list[list[str]], directory: Path, form: Callable[[str], str]) -> Path:
    """One request body per list, numbers written by ``form``, for bench/wrk/bulk.lua."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, numbers in enumerate(lists, start=1):
        body = {"subaccount": SUBACCOUNT, "msisdns": [form(n) for n in numbers]}
        (directory / f"body-{i}.json").write_text(json.dumps(body, separators=(",", ":")))
    return directory


def national(e164: str) -> str:
    """+6591234567 → 91234567 (read in the subaccount's default region, SG)."""
    return e164.removeprefix("+65")


def loaded(
    srv: server.Server, url_path: str, script: str | None, a: argparse.Namespace, **kw: Any
) -> dict[str, Any]:
    """One wrk run, on a server idle again, with the server's CPU time per request."""
    server.settle(srv.proc.pid)
    before = server.cpu_seconds(srv.proc.pid)
    figures = server.wrk(srv.url + url_path, script=script, **kw)
    used = server.cpu_seconds(srv.proc.pid) - before
    figures["cpu_us_per_request"] = round(used / max(1, int(figures.get("requests", 0))) * 1e6)
    if figures["non_2xx"] or figures["socket_errors"]:
        say(f"warning: {script or url_path}: {figures['non_2xx']} non-2xx answers, "
            f"{figures['socket_errors']} socket errors")  # fmt: skip
    return figures


def hello_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The baseline: hello-world GET and POST under the same server settings and workers."""
    port = server.free_port()
    argv = [sys.executable, str(HERE / "hello_app.py"), "--port", str(port)]
    argv += ["--workers", str(a.workers)]
    say(f"hello-world baseline: {a.workers} workers, {a.connections} connections")
    with server.running(argv, port, a.workers, work / "hello.stderr") as srv:
        common = {"duration": a.duration, "connections": a.connections}
        server.wrk(srv.url + "/hello", script=None, duration=1, connections=a.connections)
        get = loaded(srv, "/hello", None, a, **common)
        post = loaded(srv, "", "webhook.lua", a, env={"CL_PATH": "/hello"}, **common)
        return {"get": get, "post": post}


def check_answers(url: str, key: str, lists: list[list[str]]) -> dict[str, Any]:
    """The bulk answers for one list in E.164, national and 00 forms must be identical."""
    headers = {"Authorization": f"Bearer {key}"}
    numbers = lists[0][:2000]
    answers = {}
    for name, form in (("e164", str), ("national", national),
                       ("00", lambda n: "00" + n[1:])):  # fmt: skip
        body = {"subaccount": SUBACCOUNT, "msisdns": [form(n) for n in numbers]}
        got = httpx.post(url + "/v1/consent/check", json=body, headers=headers, timeout=60)
        got.raise_for_status()
        answers[name] = [(r["msisdn"], r["allowed"], r["state"]) for r in got.json()["results"]]
    same = answers["e164"] == answers["national"] == answers["00"]
    states: dict[str, int] = {}
    for _, _, state in answers["e164"]:
        states[str(state)] = states.get(str(state), 0) + 1
    if not same:
        raise SystemExit("bulk answers differ between E.164, national and 00 forms")
    return {"numbers": len(numbers), "forms_agree": same, "states": states}


def server_phase(a: argparse.Namespace, db: Path, work: Path, on_file: int) -> dict[str, Any]:
    """The real server on the loaded log: decisions, bulk, memory, audit trail, webhooks."""
    from api.keys import SCOPES, create_key

    conn = connect(db)
    try:
        key = create_key(SqliteKeys(conn), tenant=load.TENANT, scopes=list(SCOPES), label="bench")
    finally:
        conn.close()
    port = server.free_port()
    argv = [str(CLI), "serve", "--db", str(db), "--port", str(port)]
    argv += ["--workers", str(a.workers)]
    lists = bulk_lists(on_file)
    e164_dir = write_bodies(lists, work / "bulk-e164", str)
    # numbers never seen before (repeats would be answered from the number memo): drawn from
    # the whole +6590000000 .. +6598999999 range, enough lists that none repeats within the run
    fresh = bulk_lists(load.SPAN, seed=6, count=max(10, int(a.duration * 15)))
    national_dir = write_bodies(fresh, work / "bulk-national", national)
    env = {"CL_KEY": key, "CL_SUBACCOUNT": SUBACCOUNT, "CL_NUMBERS": str(on_file)}
    out: dict[str, Any] = {}
    say(f"consent-ledger serve: {a.workers} workers on the {db.name} log")
    with server.running(argv, port, a.workers, work / "serve.stderr") as srv:
        out["memory_at_start"] = server.tree_memory(srv.proc.pid)
        out["answers"] = check_answers(srv.url, key, lists)
        common = {"duration": a.duration, "connections": a.connections, "env": env}
        server.wrk(srv.url, script="decision.lua", duration=1, connections=a.connections, env=env)
        say("single decisions")
        out["decision"] = loaded(srv, "", "decision.lua", a, **common)
        say("bulk decisions")
        bulk_env = {**env, "CL_BODIES": str(e164_dir)}
        bulk_connections = BULK_CONNECTIONS_PER_WORKER * a.workers
        b = loaded(srv, "", "bulk.lua", a, duration=a.duration, connections=bulk_connections,
                   env=bulk_env, timeout_s=60)  # fmt: skip
        b["numbers_per_s"] = round(b["requests_per_s"] * BULK_SIZE)
        out["bulk"] = b
        out["memory_after_bulk"] = server.tree_memory(srv.proc.pid)
        nat_env = {**env, "CL_BODIES": str(national_dir)}
        b = loaded(srv, "", "bulk.lua", a, duration=max(2, a.duration / 2),
                   connections=bulk_connections, env=nat_env, timeout_s=60)  # fmt: skip
        b["numbers_per_s"] = round(b["requests_per_s"] * BULK_SIZE)
        out["bulk_national"] = b
        say("audit trail")
        audit_env = {**env, "CL_MSISDN": "%2B" + load.AUDIT_NUMBER[1:]}
        out["audit"] = loaded(srv, "", "audit.lua", a, duration=a.duration,
                              connections=a.audit_connections, env=audit_env)  # fmt: skip
        say("webhook intake")
        hook_env = {**env, "CL_RUN": uuid.uuid4().hex[:8]}
        out["webhook"] = loaded(srv, "", "webhook.lua", a, duration=a.duration,
                                connections=a.connections, env=hook_env)  # fmt: skip
        out["memory_at_end"] = server.tree_memory(srv.proc.pid)
        out["log_position_after"] = httpx.get(srv.url + "/readyz").json().get("log_position")
    return out


def adopt_phase(a: argparse.Namespace, db: Path, work: Path) -> dict[str, Any]:
    """Export, the raw append baseline, an import, and webhooks during an import (last: each
    adds entries to the log)."""
    out: dict[str, Any] = {}
    say("export of a suppression list")
    out["export"] = adopt.export_rate(db)
    say(f"raw append baseline and import of {a.import_rows:,} rows")
    out["baseline"] = adopt.baseline(db, work, a.import_rows)
    out["import"] = adopt.import_rate(db, work, a.import_rows)
    if "http" not in a.skip:
        from api.keys import SCOPES, create_key

        conn = connect(db)
        try:
            key = create_key(SqliteKeys(conn), tenant=load.TENANT, scopes=list(SCOPES))
        finally:
            conn.close()
        say("webhooks without and during an import")
        out["webhook"] = adopt.webhook_during_import(
            db, work, key, a.import_rows, a.duration, a.connections, a.workers
        )
    return out


# -- main --------------------------------------------------------------------------------------
def arguments() -> argparse.Namespace:
    """Command-line options (sizes are parameters)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, short loads (< 1 minute)")
    p.add_argument("--log-size", type=int, help="entries in the log (default 1,000,000)")
    p.add_argument("--numbers", type=int, help="distinct numbers on file (default = log size)")
    p.add_argument("--duration", type=float, help="seconds per wrk load (default 10)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--audit-connections", type=int, default=1)
    p.add_argument("--audit-entries", type=int, default=50)
    p.add_argument("--appends", type=int, nargs=2, metavar=("ONE", "EIGHT"),
                   help="entries for the 1-writer and 8-writer append runs")  # fmt: skip
    p.add_argument("--db", type=Path, help="build the log here and keep it (reused if it exists)")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["verify", "rebuild", "appends", "http", "import", "console"],
    )
    p.add_argument("--import-rows", type=int, help="rows per import run (default 100,000)")
    a = p.parse_args()
    a.log_size = a.log_size or (20_000 if a.quick else 1_000_000)
    a.numbers = a.numbers or a.log_size
    a.duration = a.duration or (3.0 if a.quick else 10.0)
    a.appends = tuple(a.appends or ((500, 2_000) if a.quick else (3_000, 20_000)))
    a.import_rows = a.import_rows or (10_000 if a.quick else 100_000)
    return a


def main() -> int:
    """Run every step, print the table, write the JSON."""
    a = arguments()
    if "http" not in a.skip and not server.have_wrk():
        sys.stderr.write(
            "bench: wrk is not installed; it drives the HTTP figures. Install it "
            "(Debian/Ubuntu: apt-get install wrk) or run with --skip http.\n"
        )
        return 2
    started = time.perf_counter()
    m: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {k: v for k, v in vars(a).items() if k != "db"} | {"db": str(a.db)},
    }
    work = Path(tempfile.mkdtemp(prefix="consent-ledger-bench-", dir="/tmp"))
    db = a.db or work / "ledger.db"
    try:
        m["log"] = build_log(a, db)
        on_file = min(a.numbers, a.log_size - len(load.SUBACCOUNTS) - a.audit_entries)
        m["log"]["numbers_on_file"] = on_file
        if "verify" not in a.skip:
            say("verify")
            m["verify"] = verify(db)
        if "rebuild" not in a.skip:
            say("rebuild")
            m["rebuild"] = inproc.rebuild_rate(db)
        if "console" not in a.skip:
            say("console number page")
            m["console"] = console.number_page(db)
        say("raw sqlite3 point lookups")
        m["raw_lookups"] = inproc.raw_lookups(db, bulk_lists(on_file)[:5], SUBACCOUNT)
        if "appends" not in a.skip:
            say(f"in-process appends ({a.appends[0]:,} and {a.appends[1]:,} entries)")
            m["appends"] = inproc.appends(a.appends)
        if "http" not in a.skip:
            m["hello"] = hello_phase(a, work)
            m["http"] = server_phase(a, db, work, on_file)
        if "import" not in a.skip:
            m["adopt"] = adopt_phase(a, db, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m["seconds"] = round(time.perf_counter() - started, 1)
    m["machine"]["load_average_at_end"] = os.getloadavg()
    rows = rows_of(m, a)
    m["table"] = [vars(r) for r in rows]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(m, indent=2, default=str))
    print(
        f"\n{m['date']} · {m['machine']['cpus']} cores · {a.workers} workers · "
        f"log {m['log']['entries']:,} entries · wrk {a.connections} connections, "
        f"{a.duration:g} s per load · load average at start "
        f"{m['machine']['load_average_at_start'][0]:.2f} · {m['seconds']:.0f} s in all\n"
    )
    print(table(rows))
    if "http" in m:
        print()
        print(cpu_table(m))
    print(f"\nJSON: {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
