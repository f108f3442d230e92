"""Quick load run against the real server (loopback only, bounded in time and count).

Starts ``consent-ledger serve --workers N`` on a fresh temporary database (or targets ``--url``
with ``--key``), seeds some opt-outs, then measures:

- ``check``: requests/s of single checks, ``GET /v1/consent/{subaccount}/{msisdn}``
  (random numbers);
- ``webhook``: requests/s of 8x8 webhook intake, ``POST /v1/webhooks/8x8``, a unique umid each
  (every request appends one durable entry);
- ``bulk``: numbers/s of bulk checks, ``POST /v1/consent/check`` with 10,000 numbers each.

``check`` and ``webhook`` use wrk (``apt-get install wrk``) with the Lua scripts in
``bench/wrk/``; without wrk they fall back to an httpx/asyncio load generator (slower: it shares
the CPUs with the server). ``bulk`` always uses httpx. Prints one JSON document with the figures.

    python bench/quick_load.py --workers 2 --duration 10 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("consent-ledger")
KEY_LINE = re.compile(r"^\s+(cl_[a-z0-9]{12}_[A-Za-z0-9_-]{20,128})\s*$", re.MULTILINE)
SUBACCOUNT = "ACME_MKT"
SEEDED = 1000  # opt-outs for +6590000000 .. +6590000999


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(workers: int) -> Iterator[tuple[str, str]]:
    """A server on a fresh temporary database: (base URL, admin key); stopped with SIGTERM."""
    workdir = Path(tempfile.mkdtemp(prefix="consent-ledger-bench-"))
    port = free_port()
    log = workdir / "server.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_LEDGER_")}
    proc = subprocess.Popen(
        [
            str(CLI),
            "serve",
            "--db",
            str(workdir / "ledger.db"),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-format",
            "json",
            "--checkpoint-interval",
            "0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        key = KEY_LINE.findall(log.read_text())[0]
        yield f"http://127.0.0.1:{port}", key
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            shutil.rmtree(workdir, ignore_errors=True)


def webhook_body(umid: str, source: str, text: str = "STOP") -> dict[str, object]:
    return {
        "namespace": "SMS",
        "eventType": "inbound_message_received",
        "payload": {
            "umid": umid,
            "subAccountId": SUBACCOUNT,
            "timestamp": "2026-03-02T09:15:27.431Z",
            "source": source,
            "destination": "+6590001111",
            "body": text,
        },
    }


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"8x8:{key}".encode()).decode()


async def seed(url: str, key: str) -> None:
    """Opt out +6590000000 .. +6590000999 (so a third of the checked numbers are suppressed)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with sem:
                body = webhook_body(f"seed-{uuid.uuid4()}", f"+659{i:07d}")
                answer = await http.post(
                    "/v1/webhooks/8x8", json=body, headers={"Authorization": basic(key)}
                )
                answer.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(SEEDED)))


def run_wrk(
    url: str, key: str, script: str, duration: int, connections: int, threads: int
) -> dict[str, object]:
    """One wrk run; requests/s, latency percentiles and error counts from its report."""
    env = {**os.environ, "CL_KEY": key, "CL_RUN": uuid.uuid4().hex[:8], "CL_SUBACCOUNT": SUBACCOUNT}
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(HERE / "wrk" / script),
        url,
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    figures: dict[str, object] = {"tool": " ".join([*cmd[:-1], "URL"])}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        figures["requests_per_s"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        figures["requests"] = int(m.group(1))
    for pct in ("50", "90", "99"):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE):
            figures[f"p{pct}"] = m.group(1)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(m.group(1)) if m else 0
    if m := re.search(r"Socket errors: (.*)", out):
        figures["socket_errors"] = m.group(1)
    return figures


async def python_load(
    url: str, key: str, kind: str, duration: int, connections: int
) -> dict[str, object]:
    """The fallback load generator: ``connections`` concurrent keep-alive loops for ``duration``."""
    done = errors = 0
    stop_at = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def loop(n: int) -> None:
            nonlocal done, errors
            while time.monotonic() < stop_at:
                if kind == "check":
                    number = random.choice(
                        [90000000 + random.randint(0, 999), 91000000 + random.randint(0, 7999999)]
                    )
                    answer = await http.get(
                        f"/v1/consent/{SUBACCOUNT}/%2B65{number}",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                else:
                    body = webhook_body(
                        f"py-{n}-{uuid.uuid4()}", f"+659{random.randint(1000000, 8999999)}"
                    )
                    answer = await http.post(
                        "/v1/webhooks/8x8", json=body, headers={"Authorization": basic(key)}
                    )
                done += 1
                errors += answer.status_code != 200

        start = time.monotonic()
        await asyncio.gather(*(loop(n) for n in range(connections)))
        elapsed = time.monotonic() - start
    return {
        "tool": f"httpx asyncio, {connections} connections",
        "requests": done,
        "requests_per_s": round(done / elapsed, 1),
        "non_2xx": errors,
    }


async def bulk(
    url: str, key: str, duration: int, concurrency: int, size: int = 10_000
) -> dict[str, object]:
    """Numbers/s of ``POST /v1/consent/check`` with ``size`` numbers per request."""
    numbers = [f"+659{i:07d}" for i in range(size)]  # the first SEEDED are opted out
    payload = json.dumps({"subaccount": SUBACCOUNT, "msisdns": numbers}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    done = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + duration
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        first = await http.post("/v1/consent/check", content=payload, headers=headers)
        if first.status_code != 200:
            return {"skipped": f"POST /v1/consent/check answered {first.status_code}"}
        counts = first.json().get("counts")

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                answer = await http.post("/v1/consent/check", content=payload, headers=headers)
                answer.raise_for_status()
                latencies.append(time.monotonic() - t0)
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    latencies.sort()
    return {
        "tool": f"httpx asyncio, {concurrency} concurrent requests of {size} numbers",
        "requests": done,
        "numbers_per_s": round(done * size / elapsed),
        "p50_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
        "counts_first_answer": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (≤ 60)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--bulk-concurrency", type=int, default=2)
    parser.add_argument("--url", help="an already running server (loopback) instead of a new one")
    parser.add_argument("--key", help="an API key with every scope, with --url")
    parser.add_argument("--only", choices=["check", "webhook", "bulk"], action="append")
    args = parser.parse_args()
    duration = min(args.duration, 60)
    wanted = args.only or ["check", "webhook", "bulk"]
    use_wrk = shutil.which("wrk") is not None

    def scenarios(url: str, key: str) -> dict[str, object]:
        asyncio.run(seed(url, key))
        report: dict[str, object] = {
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "duration_s": duration,
        }
        for kind in ("check", "webhook"):
            if kind in wanted:
                report[kind] = (
                    run_wrk(url, key, f"{kind}.lua", duration, args.connections, args.wrk_threads)
                    if use_wrk
                    else asyncio.run(python_load(url, key, kind, duration, args.connections))
                )
        if "bulk" in wanted:
            report["bulk"] = asyncio.run(bulk(url, key, duration, args.bulk_concurrency))
        report["log_position_after"] = httpx.get(url + "/readyz").json().get("log_position")
        return report

    if args.url:
        if not args.key or not re.match(r"https?://(127\.0\.0\.1|localhost|\[::1\])", args.url):
            raise SystemExit("--url must be a loopback address, and --key is required with it")
        report = scenarios(args.url, args.key)
    else:
        with running_server(args.workers) as (url, key):
            report = scenarios(url, key)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
