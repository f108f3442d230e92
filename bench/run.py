"""The benchmark suite: every figure of issues 5 and 12 beside its baseline, measured in one run,
on SQLite, on PostgreSQL, or on both side by side.

    ./dev bench            # the full run on SQLite (1,000,000-entry log)
    ./dev bench --quick    # a small log and short loads
    ./dev bench --db sqlite --db 'postgresql://USER@HOST:5432/DB'   # both engines, one table

Steps, for each engine (``--db``, see ``bench/targets.py``): build a log with the bulk loader
(``bench/load.py``: the store's own append, not over HTTP); time ``consent-ledger verify`` and a
projection rebuild on it; time the raw point-lookup baseline (a ``sqlite3`` or ``psycopg``
loop); time durable in-process appends against the ``eventsourcing`` library's recorder of the
same engine; start the real server (``consent-ledger serve``, production settings, ``--workers``
processes) on loopback and drive it with wrk and the Lua scripts in ``bench/wrk/``; on
PostgreSQL, then two ``serve`` nodes on the same database, one wrk thread per node. The
hello-world baseline (``bench/hello_app.py``) runs once. Prints a Markdown table (figure, engine,
baseline, ratio, goal, PASS/MISS) and writes everything measured to
``bench/results/<timestamp>.json``.

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
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adopt  # noqa: E402
import console  # noqa: E402
import inproc  # noqa: E402
import load  # noqa: E402
import server  # noqa: E402
from targets import Target, targets  # noqa: E402

from api.keys import SCOPES, create_key  # noqa: E402
from ledger.sqlite.connection import connect  # noqa: E402
from projections.ledger import ConsentLedger  # noqa: E402

CLI = Path(sys.executable).with_name("consent-ledger")
SUBACCOUNT = "ACME_MKT"
BULK_SIZE = 10_000
BULK_LISTS = 20
BULK_CONNECTIONS_PER_WORKER = 4
"""Bulk loads use this many connections per worker: the kernel spreads connections over the
workers by a hash, and with one per worker both land on the same worker half the time."""
GOAL_LOG = 1_000_000
"""The log size the verify goals are stated for: a smaller log (``--quick``) is not judged."""
NODES = 2


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


# -- the table ---------------------------------------------------------------------------------
@dataclass
class Row:
    """One figure on one engine: its value, its baseline (if any) and whether it meets its
    goal (``None``: no goal, or not judged in this run)."""

    figure: str
    engine: str
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
    """The rows as a Markdown table; a figure measured on several engines is named once."""
    lines = [
        "| figure | engine | value | baseline (same run) | ratio | goal | result |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    previous = None
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        result = "—" if r.ok is None else ("PASS" if r.ok else "**MISS**")
        figure = "〃" if r.figure == previous else r.figure
        previous = r.figure
        lines.append(
            f"| {figure} | {r.engine} | {r.value} | {r.baseline} | {ratio} | {r.goal} | {result} |"
        )
    return "\n".join(lines)


def _unjudged(goal: str) -> tuple[str, None]:
    return goal, None


def engine_rows(
    e: dict[str, Any], engine: str, m: dict[str, Any], a: argparse.Namespace
) -> list[tuple[str, Row]]:
    """One engine's figures (``e``: what was measured on it), each under a key that lines it
    up with the same figure of the other engine. Goals: issue 5's on SQLite, issue 12's on
    PostgreSQL (a figure issue 12 sets no goal for shows none)."""
    pg = engine == "postgresql"
    name = "PostgreSQL" if pg else "SQLite"
    sqlite = m.get("engines", {}).get("sqlite", {})
    out: list[tuple[str, Row]] = []

    def add(
        key: str,
        figure: str,
        value: str,
        baseline: str,
        ratio: float | None,
        goal: str,
        ok: bool | None,
    ) -> None:
        out.append((key, Row(figure, name, value, baseline, ratio, goal, ok)))

    http, hello = e.get("http", {}), m.get("hello", {})
    c = a.connections
    if "webhook" in http:
        w, h = http["webhook"], hello["post"]
        ratio = w["requests_per_s"] / h["requests_per_s"]
        goal, ok = ("—", None) if pg else ("≥ 0.4 × baseline", ratio >= 0.4)
        add(
            "webhook",
            f"webhook intake, unique 8x8 bodies, {c} connections: req/s",
            _n(w["requests_per_s"]),
            _n(h["requests_per_s"]) + " (hello POST)",
            ratio,
            goal,
            ok,
        )
        add("webhook_p50", "… p50", _ms(w["p50_ms"]), _ms(h["p50_ms"]), None, "—", None)
        goal, ok = ("—", None) if pg else ("≤ 50 ms", w["p99_ms"] <= 50)
        add("webhook_p99", "… p99", _ms(w["p99_ms"]), _ms(h["p99_ms"]), None, goal, ok)
    two = e.get("two_nodes")
    if two:
        w = two["webhook"]
        workers = two["workers_per_node"]
        add(
            "two_nodes",
            f"webhook intake, {NODES} nodes ({workers} worker"
            f"{'s' if workers > 1 else ''} each) on one database, {c} connections: req/s",
            _n(w["requests_per_s"]),
            _n(http["webhook"]["requests_per_s"]) + " (one node)",
            w["requests_per_s"] / http["webhook"]["requests_per_s"],
            "—",
            None,
        )
        add(
            "two_nodes_p99",
            "… p99",
            _ms(w["p99_ms"]),
            _ms(http["webhook"]["p99_ms"]),
            None,
            "≤ 50 ms",
            w["p99_ms"] <= 50,
        )
        add(
            "two_nodes_kept",
            "… every acknowledged webhook in the log (entries added ≥ 200s)",
            f"{two['appended']:,} ≥ {two['acknowledged']:,}",
            "—",
            None,
            "nothing lost",
            two["appended"] >= two["acknowledged"],
        )
    if "decision" in http:
        d = http["decision"]
        figure = f"single decision GET /v1/consent/…, {c} connections: req/s"
        theirs = sqlite.get("http", {}).get("decision")
        if pg and theirs:
            ratio = d["requests_per_s"] / theirs["requests_per_s"]
            add(
                "decision",
                figure,
                _n(d["requests_per_s"]),
                _n(theirs["requests_per_s"]) + " (SQLite)",
                ratio,
                "≥ 0.5 × SQLite",
                ratio >= 0.5,
            )
        elif pg:
            add(
                "decision",
                figure,
                _n(d["requests_per_s"]),
                "—",
                None,
                "≥ 0.5 × SQLite (add --db sqlite)",
                None,
            )
        else:
            h = hello["get"]
            ratio = d["requests_per_s"] / h["requests_per_s"]
            add(
                "decision",
                figure,
                _n(d["requests_per_s"]),
                _n(h["requests_per_s"]) + " (hello GET)",
                ratio,
                "≥ 0.6 × baseline",
                ratio >= 0.6,
            )
        add(
            "decision_p99",
            "… p99",
            _ms(d["p99_ms"]),
            _ms(hello["get"]["p99_ms"]),
            None,
            "≤ 20 ms",
            d["p99_ms"] <= 20,
        )
    if "bulk" in http:
        b, raw = http["bulk"], e["raw_lookups"]
        rate, base = b["numbers_per_s"], raw["numbers_per_s"]
        loop = "psycopg" if pg else "sqlite3"
        if pg:
            goal, ok = "≥ 150,000/s", rate >= 150_000
        else:
            goal, ok = "≥ 250,000/s and ≥ 1.0 × baseline", rate >= 250_000 and rate >= base
        add(
            "bulk",
            f"bulk decision, {BULK_SIZE:,} numbers per request, "
            f"{e['log']['numbers_on_file']:,} numbers on file: numbers/s",
            _n(rate),
            _n(base) + f" (raw {loop} loop)",
            rate / base,
            goal,
            ok,
        )
    if "bulk_national" in http:
        b = http["bulk_national"]
        add(
            "bulk_national",
            "… lists of new numbers as national digits (full parsing): numbers/s",
            _n(b["numbers_per_s"]),
            "—",
            None,
            "— (answers checked equal)",
            None,
        )
    if "appends" in e:
        ap = e["appends"]
        o1, t1, o8, t8 = ap["ours_1"], ap["theirs_1"], ap["ours_8"], ap["theirs_8"]
        base = " (eventsourcing" + (" PG)" if pg else ")")
        r1 = o1["entries_per_s"] / t1["entries_per_s"]
        goal, ok = ("—", None) if pg else ("≥ 1.0 × baseline", r1 >= 1.0)
        add(
            "append_1",
            "in-process append, one writer, durable, one entry per call: entries/s",
            _n(o1["entries_per_s"]),
            _n(t1["entries_per_s"]) + base,
            r1,
            goal,
            ok,
        )
        r8 = o8["entries_per_s"] / t8["entries_per_s"]
        if pg:
            goal, ok = "≥ 1.0 × baseline", r8 >= 1.0
        else:
            goal, ok = "≥ 10,000/s", o8["entries_per_s"] >= 10_000
        add(
            "append_8",
            "in-process append, 8 concurrent writers, durable: entries/s",
            _n(o8["entries_per_s"]),
            _n(t8["entries_per_s"]) + base,
            r8,
            goal,
            ok,
        )
    size = e.get("log", {}).get("entries", 0)
    if "rebuild" in e:
        rate = e["rebuild"]["entries_per_s"]
        goal, ok = ("—", None) if pg else ("≥ 100,000/s", rate >= 100_000)
        add(
            "rebuild",
            f"projection rebuild from a {size:,}-entry log: entries/s",
            _n(rate),
            "—",
            None,
            goal,
            ok,
        )
    if "audit" in http:
        p99 = http["audit"]["p99_ms"]
        goal, ok = ("—", None) if pg else ("≤ 10 ms", p99 <= 10)
        add(
            "audit",
            f"audit trail for one number ({a.audit_entries} entries) in a {size:,}-entry "
            f"log, via HTTP ({a.audit_connections} connection): p99",
            _ms(p99),
            "—",
            None,
            goal,
            ok,
        )
    if "console" in e:
        c = e["console"]
        add(
            "console",
            f"console number page for one number ({c['entries_shown']} entries) in a "
            f"{size:,}-entry log, server time (look-up and render, in-process): p99",
            _ms(c["p99_ms"]),
            "—",
            None,
            "≤ 100 ms",
            c["p99_ms"] <= 100,
        )
    if "verify" in e:
        s = e["verify"]["seconds"]
        limit = 60 if pg else 30
        goal = f"≤ {limit} s for {GOAL_LOG:,} entries"
        if size >= GOAL_LOG:
            ok = s <= limit and e["verify"]["ok"]
        else:  # a small log (--quick) says nothing about the goal; a failed verify still fails
            goal += f" (not judged: the log has {size:,})"
            ok = None if e["verify"]["ok"] else False
        add(
            "verify",
            f"consent-ledger verify of a {size:,}-entry log",
            f"{s:.1f} s",
            "—",
            None,
            goal,
            ok,
        )
    if "memory_after_bulk" in http:
        rss = http["memory_after_bulk"]["rss_mib"]
        goal, ok = ("—", None) if pg else ("≤ 400 MiB", rss <= 400)
        add(
            "memory",
            f"resident memory of the server ({a.workers} workers, all processes) "
            "after the bulk run",
            f"{rss:,.0f} MiB",
            "—",
            None,
            goal,
            ok,
        )
    out += adopt_rows(e.get("adopt", {}), name)
    return out


def rows_of(m: dict[str, Any], a: argparse.Namespace) -> list[Row]:
    """Every engine's figures, the same figure of each engine one after the other."""
    keyed = [engine_rows(e, engine, m, a) for engine, e in m.get("engines", {}).items()]
    return [row for key in ROW_ORDER for rows in keyed for k, row in rows if k == key]


ROW_ORDER = (
    "webhook", "webhook_p50", "webhook_p99", "two_nodes", "two_nodes_p99", "two_nodes_kept",
    "decision", "decision_p99", "bulk", "bulk_national", "append_1", "append_8", "rebuild",
    "audit", "console", "verify", "memory", "import", "export", "webhook_during_import",
)  # fmt: skip
"""The table's rows: each figure, every engine's row of it one after the other."""


def adopt_rows(m: dict[str, Any], name: str) -> list[tuple[str, Row]]:
    """Import, export and webhooks during an import (docs/adopting.md; SQLite runs)."""
    rows: list[tuple[str, Row]] = []
    if "import" in m:
        rate, base = m["import"]["rows_per_s"], m["baseline"]["entries_per_s"]
        size = m["import"]["log_entries_before"]
        rows.append(
            (
                "import",
                Row(
                    f"import of {m['import']['rows']:,} new opt-outs into a {size:,}-entry log: "
                    "rows/s",
                    name,
                    _n(rate),
                    f"{_n(base)} (raw append of the same drafts)",
                    rate / base,
                    "≥ 50,000/s",
                    rate >= 50_000,
                ),
            )
        )
    if "export" in m:
        e = m["export"]
        rows.append(
            (
                "export",
                Row(
                    f"export of a suppression list ({e['numbers']:,} numbers), CSV: numbers/s",
                    name,
                    _n(e["numbers_per_s"]),
                    "—",
                    None,
                    "≥ 100,000/s (1,000,000 in ≤ 10 s)",
                    e["numbers_per_s"] >= 100_000,
                ),
            )
        )
    if "webhook" in m:
        during, alone = m["webhook"]["during_import"]["p99_ms"], m["webhook"]["alone"]["p99_ms"]
        rows.append(
            (
                "webhook_during_import",
                Row(
                    "webhook p99 during an import (vs. without, same server and load)",
                    name,
                    _ms(during),
                    _ms(alone),
                    during / alone,
                    "≤ 2 × without",
                    during <= 2 * alone,
                ),
            )
        )
    return rows


def cpu_table(m: dict[str, Any]) -> str:
    """Server CPU time per request (all server processes), a hint at where time goes."""
    lines = ["| load | requests/s | server CPU per request |", "|---|---:|---:|"]
    rows: list[tuple[str, dict[str, Any] | None]] = [
        (f"hello {name}", m.get("hello", {}).get(name)) for name in ("get", "post")
    ]
    for engine, e in m.get("engines", {}).items():
        for name in ("decision", "webhook", "bulk", "audit"):
            rows.append((f"{engine} {name}", e.get("http", {}).get(name)))
        two = e.get("two_nodes")
        if two:
            rows.append((f"{engine} webhook, {NODES} nodes", two["webhook"]))
    for label, f in rows:
        if f and f.get("cpu_us_per_request"):
            lines.append(
                f"| {label} | {f['requests_per_s']:,.0f} | {f['cpu_us_per_request']:,.0f} µs |"
            )
    return "\n".join(lines)


# -- steps -------------------------------------------------------------------------------------
def build_log(a: argparse.Namespace, t: Target) -> dict[str, Any]:
    """Fill ``t``'s log with the bulk loader (or reuse a kept SQLite log)."""
    path = t.location.path
    if path is not None and path.exists():
        say(f"reusing {path}")
        conn = connect(path, readonly=True)
        try:
            head = conn.execute("SELECT max(position) FROM log").fetchone()[0]
        finally:
            conn.close()
        return {"entries": head, "reused": True}
    say(
        f"{t.name}: loading {a.log_size:,} entries ({a.numbers:,} numbers) into {t.location.masked}"
    )
    timings = load.load(
        t.log, a.log_size, a.numbers, 5_000, 1, audit_entries=a.audit_entries, quiet=a.quick
    )
    if t.schemas is not None:  # autovacuum's work after a bulk load, done now (it may be off)
        say(f"{t.name}: VACUUM (ANALYZE) of the loaded log")
        timings["vacuum_analyze_seconds"] = round(t.schemas.vacuum("log"), 1)
    return {**timings, "reused": False}


def verify(t: Target) -> dict[str, Any]:
    """Wall-clock seconds of ``consent-ledger verify`` (a subprocess, as users run it)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(CLI), "verify", "--db", t.log, "--no-progress", *t.key_options()],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    if not report.get("ok"):
        say(f"warning: verify failed: {done.stderr.strip()[-400:]}")
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
    srvs: list[server.Server],
    url_path: str,
    script: str | None,
    t: Target | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """One wrk run against the first of ``srvs``, on servers (and ``t``'s database) idle again,
    with the servers' CPU time per request (all of their processes)."""
    for srv in srvs:
        server.settle(srv.proc.pid)
    if t is not None:
        t.idle()
    before = sum(server.cpu_seconds(srv.proc.pid) for srv in srvs)
    figures = server.wrk(srvs[0].url + url_path, script=script, **kw)
    used = sum(server.cpu_seconds(srv.proc.pid) for srv in srvs) - before
    figures["cpu_us_per_request"] = round(used / max(1, int(figures.get("requests", 0))) * 1e6)
    if figures["non_2xx"] or figures["socket_errors"]:
        say(
            f"warning: {script or url_path}: {figures['non_2xx']} non-2xx answers, "
            f"{figures['socket_errors']} socket errors"
        )
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
        get = loaded([srv], "/hello", None, **common)
        post = loaded([srv], "", "webhook.lua", env={"CL_PATH": "/hello"}, **common)
        return {"get": get, "post": post}


def check_answers(url: str, key: str, lists: list[list[str]]) -> dict[str, Any]:
    """The bulk answers for one list in E.164, national and 00 forms must be identical."""
    headers = {"Authorization": f"Bearer {key}"}
    numbers = lists[0][:2000]
    answers = {}
    for name, form in (("e164", str), ("national", national), ("00", lambda n: "00" + n[1:])):
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


def bench_key(t: Target) -> str:
    """An API key with every scope on ``t``'s log (through the store's key table)."""
    ledger = ConsentLedger(t.log)
    try:
        with ledger.store.keys_for_update() as keys:
            return create_key(keys, tenant=load.TENANT, scopes=list(SCOPES), label="bench")
    finally:
        ledger.close()


def serve_argv(t: Target, port: int, workers: int) -> list[str]:
    """``consent-ledger serve`` on ``t``'s log (production settings)."""
    argv = [str(CLI), "serve", "--db", t.log, "--port", str(port), "--workers", str(workers)]
    return argv + t.key_options()


def server_phase(
    a: argparse.Namespace, t: Target, work: Path, on_file: int, key: str
) -> dict[str, Any]:
    """The real server on the loaded log: decisions, bulk, memory, audit trail, webhooks."""
    port = server.free_port()
    lists = bulk_lists(on_file)
    e164_dir = write_bodies(lists, work / "bulk-e164", str)
    # numbers never seen before (repeats would be answered from the number memo): drawn from
    # the whole +6590000000 .. +6598999999 range, enough lists that none repeats within the run
    fresh = bulk_lists(load.SPAN, seed=6, count=max(10, int(a.duration * 15)))
    national_dir = write_bodies(fresh, work / "bulk-national", national)
    env = {"CL_KEY": key, "CL_SUBACCOUNT": SUBACCOUNT, "CL_NUMBERS": str(on_file)}
    out: dict[str, Any] = {}
    say(f"{t.name}: consent-ledger serve, {a.workers} workers")
    log = work / f"serve-{t.engine}.stderr"
    with server.running(serve_argv(t, port, a.workers), port, a.workers, log) as srv:
        out["memory_at_start"] = server.tree_memory(srv.proc.pid)
        out["answers"] = check_answers(srv.url, key, lists)
        common = {"duration": a.duration, "connections": a.connections, "env": env}
        server.wrk(srv.url, script="decision.lua", duration=1, connections=a.connections, env=env)
        say(f"{t.name}: single decisions")
        out["decision"] = loaded([srv], "", "decision.lua", t, **common)
        say(f"{t.name}: bulk decisions")
        bulk_env = {**env, "CL_BODIES": str(e164_dir)}
        bulk_connections = BULK_CONNECTIONS_PER_WORKER * a.workers
        b = loaded(
            [srv],
            "",
            "bulk.lua",
            t,
            duration=a.duration,
            connections=bulk_connections,
            env=bulk_env,
            timeout_s=60,
        )
        b["numbers_per_s"] = round(b["requests_per_s"] * BULK_SIZE)
        out["bulk"] = b
        out["memory_after_bulk"] = server.tree_memory(srv.proc.pid)
        nat_env = {**env, "CL_BODIES": str(national_dir)}
        b = loaded(
            [srv],
            "",
            "bulk.lua",
            t,
            duration=max(3, a.duration / 2),
            connections=bulk_connections,
            env=nat_env,
            timeout_s=60,
        )
        b["numbers_per_s"] = round(b["requests_per_s"] * BULK_SIZE)
        out["bulk_national"] = b
        say(f"{t.name}: audit trail")
        audit_env = {**env, "CL_MSISDN": "%2B" + load.AUDIT_NUMBER[1:]}
        out["audit"] = loaded(
            [srv],
            "",
            "audit.lua",
            t,
            duration=a.duration,
            connections=a.audit_connections,
            env=audit_env,
        )
        say(f"{t.name}: webhook intake")
        hook_env = {**env, "CL_RUN": uuid.uuid4().hex[:8]}
        out["webhook"] = loaded(
            [srv],
            "",
            "webhook.lua",
            t,
            duration=a.duration,
            connections=a.connections,
            env=hook_env,
        )
        out["memory_at_end"] = server.tree_memory(srv.proc.pid)
        out["log_position_after"] = httpx.get(srv.url + "/readyz").json().get("log_position")
    return out


def two_node_phase(a: argparse.Namespace, t: Target, work: Path, key: str) -> dict[str, Any]:
    """``NODES`` servers on the same database (``--node-workers`` each, own ports), one wrk
    thread per node (``CL_NODES``: one latency histogram for all of them), unique webhooks;
    then every acknowledged webhook must be in the log (entries added ≥ 2xx answers)."""
    workers = a.node_workers
    say(f"{t.name}: webhook intake on {NODES} nodes ({workers} worker(s) each)")
    before = _head(t)
    env = {"CL_KEY": key, "CL_RUN": uuid.uuid4().hex[:8]}
    with ExitStack() as stack:
        srvs = []
        for i in range(NODES):
            port = server.free_port()
            log = work / f"node-{i}.stderr"
            srvs.append(
                stack.enter_context(
                    server.running(serve_argv(t, port, workers), port, workers, log)
                )
            )
        env["CL_NODES"] = ",".join(srv.url.removeprefix("http://") for srv in srvs)
        server.wrk(
            srvs[0].url,
            script="webhook.lua",
            duration=1,
            connections=NODES * 2,
            threads=NODES,
            env={**env, "CL_RUN": uuid.uuid4().hex[:8]},
        )
        warmed = _head(t)
        figures = loaded(
            srvs,
            "",
            "webhook.lua",
            t,
            duration=a.duration,
            connections=a.connections,
            threads=NODES,
            env=env,
        )
        for srv in srvs:  # requests still in flight when wrk stopped finish before counting
            server.settle(srv.proc.pid)
        t.idle()
    after = _head(t)
    return {
        "workers_per_node": workers,
        "nodes": NODES,
        "webhook": figures,
        "head_before": before,
        "acknowledged": int(figures.get("requests", 0)) - int(figures["non_2xx"]),
        "appended": after - warmed,
    }


def _head(t: Target) -> int:
    """The log head of ``t`` now."""
    ledger = ConsentLedger(t.log)
    try:
        return ledger.head()
    finally:
        ledger.close()


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
        key = bench_key(Target("sqlite", str(db)))
        say("webhooks without and during an import")
        out["webhook"] = adopt.webhook_during_import(
            db, work, key, a.import_rows, a.duration, a.connections, a.workers
        )
    return out


# -- main --------------------------------------------------------------------------------------
def arguments() -> argparse.Namespace:
    """Command-line options (sizes are parameters)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, short loads")
    p.add_argument("--log-size", type=int, help="entries in the log (default 1,000,000)")
    p.add_argument("--numbers", type=int, help="distinct numbers on file (default = log size)")
    p.add_argument("--duration", type=float, help="seconds per wrk load (default 10)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    p.add_argument(
        "--node-workers",
        type=int,
        default=1,
        help=f"worker processes of each of the {NODES} nodes of the PostgreSQL "
        "multi-node row (default 1: as many processes in all as the one-node rows)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--audit-connections", type=int, default=1)
    p.add_argument("--audit-entries", type=int, default=50)
    p.add_argument(
        "--appends",
        type=int,
        nargs=2,
        metavar=("ONE", "EIGHT"),
        help="entries for the 1-writer and 8-writer append runs",
    )
    p.add_argument(
        "--db",
        action="append",
        default=[],
        metavar="LOCATION",
        help="an engine to measure, once per engine: 'sqlite' (a temporary SQLite "
        "log; the default), a path or sqlite:///PATH (the SQLite log is built there "
        "and kept, reused if it exists), or postgresql://USER@HOST:PORT/DATABASE "
        "(every store of the run in a fresh schema there, dropped at the end)",
    )
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


def engine_phase(a: argparse.Namespace, t: Target, work: Path) -> dict[str, Any]:
    """Every figure on one engine."""
    e: dict[str, Any] = {"location": t.location.masked}
    if t.schemas is not None:
        e["server"] = t.schemas.settings()
    e["log"] = build_log(a, t)
    on_file = min(a.numbers, a.log_size - len(load.SUBACCOUNTS) - a.audit_entries)
    e["log"]["numbers_on_file"] = on_file
    if "verify" not in a.skip:
        say(f"{t.name}: verify")
        e["verify"] = verify(t)
    if "rebuild" not in a.skip:
        say(f"{t.name}: rebuild")
        e["rebuild"] = inproc.rebuild_rate(t.log)
    if "console" not in a.skip and t.engine == "sqlite":  # bench/console.py reads SQLite
        say(f"{t.name}: console number page")
        e["console"] = console.number_page(Path(t.log))
    say(f"{t.name}: raw point lookups")
    lists = bulk_lists(on_file)[:5]
    if t.engine == "sqlite":
        e["raw_lookups"] = inproc.raw_lookups(Path(t.log), lists, SUBACCOUNT)
    else:
        e["raw_lookups"] = inproc.raw_lookups_postgres(t.log, lists, SUBACCOUNT)
    if "appends" not in a.skip:
        say(f"{t.name}: in-process appends ({a.appends[0]:,} and {a.appends[1]:,} entries)")
        e["appends"] = inproc.appends(t, a.appends)
    if "http" not in a.skip:
        key = bench_key(t)
        e["http"] = server_phase(a, t, work, on_file, key)
        if t.engine == "postgresql":
            e["two_nodes"] = two_node_phase(a, t, work, key)
    if "import" not in a.skip and t.engine == "sqlite":  # bench/adopt.py reads SQLite
        e["adopt"] = adopt_phase(a, Path(t.log), work)
    return e


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
        "settings": {k: v for k, v in vars(a).items() if k != "db"},
        "engines": {},
    }
    work = Path(tempfile.mkdtemp(prefix="consent-ledger-bench-", dir="/tmp"))
    made: list[Target] = []
    try:
        targets(a.db, work, made)
        m["settings"]["db"] = [t.location.masked for t in made]
        if "http" not in a.skip:
            m["hello"] = hello_phase(a, work)
        for t in made:
            m["engines"][t.engine] = engine_phase(a, t, work)
    finally:
        for t in made:
            t.close()
        shutil.rmtree(work, ignore_errors=True)
    m["seconds"] = round(time.perf_counter() - started, 1)
    m["machine"]["load_average_at_end"] = os.getloadavg()
    rows = rows_of(m, a)
    m["table"] = [vars(r) for r in rows]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(m, indent=2, default=str))
    sizes = ", ".join(
        f"{t.name} log {m['engines'][t.engine]['log']['entries']:,} entries" for t in made
    )
    print(
        f"\n{m['date']} · {m['machine']['cpus']} cores · {a.workers} workers · {sizes} · "
        f"wrk {a.connections} connections, {a.duration:g} s per load · load average at start "
        f"{m['machine']['load_average_at_start'][0]:.2f}, at end "
        f"{m['machine']['load_average_at_end'][0]:.2f} · {m['seconds']:.0f} s in all\n"
    )
    for t in made:
        pg = m["engines"][t.engine].get("server")
        if pg:
            print(
                f"PostgreSQL {pg.get('server_version', '?')} on this machine: fsync "
                f"{pg.get('fsync')}, synchronous_commit {pg.get('synchronous_commit')}, "
                f"autovacuum {pg.get('autovacuum')} (the run vacuums the loaded log itself), "
                f"shared_buffers {pg.get('shared_buffers')} pages\n"
            )
    print(table(rows))
    if "hello" in m:
        print()
        print(cpu_table(m))
    print(f"\nJSON: {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
