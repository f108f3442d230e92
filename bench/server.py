"""Running servers for the benchmark and driving them with wrk (loopback only, bounded runs).

``running`` starts a server command in its own process group, waits until every worker has
started, and stops the whole group afterwards (SIGTERM, then SIGKILL). ``wrk`` runs one bounded
wrk load and reads its report. ``tree_memory`` sums the resident memory of a process and all
its descendants (the server's supervisor and workers).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRK_SCRIPTS = HERE / "wrk"
STARTED = "Application startup complete"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its base URL, supervisor process and stderr file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running(
    argv: list[str], port: int, workers: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``argv`` (a server listening on ``port``) until the block ends."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_LEDGER_")}
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**clean, **(env or {})},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count(STARTED) < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {' '.join(argv)}\n{log.read_text()}")
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}", proc, log)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def have_wrk() -> bool:
    """Whether the wrk load generator is installed."""
    return shutil.which("wrk") is not None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def wrk(
    url: str,
    *,
    script: str | None,
    duration: float,
    connections: int,
    threads: int = 1,
    env: dict[str, str] | None = None,
    timeout_s: int = 10,
) -> dict[str, object]:
    """One wrk run against ``url``: requests/s, latency percentiles (ms) and error counts."""
    seconds = max(1, round(duration))  # wrk takes whole seconds
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s"]
    cmd.append("--latency")
    if script:
        cmd += ["-s", str(WRK_SCRIPTS / script)]
    cmd.append(url)
    done = subprocess.run(
        cmd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 120,
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({' '.join(cmd)}):\n{done.stdout}\n{done.stderr}")
    out = done.stdout
    figures: dict[str, object] = {"command": " ".join(cmd[:-1]) + " " + url.split("/", 3)[-1]}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        figures["requests_per_s"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        figures["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.MULTILINE):
            figures[f"p{pct}_ms"] = round(_ms(m.group(1)), 3)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return figures


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_memory(pid: int) -> dict[str, object]:
    """Resident memory of ``pid`` and its descendants: RSS summed (shared pages counted in every
    process, so an upper bound) and PSS summed (shared pages split between processes)."""
    rss = pss = 0
    procs = []
    for p in descendants(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        pss_kib = int(re.search(r"^Pss:\s+(\d+)", rollup, re.MULTILINE).group(1))  # type: ignore[union-attr]
        rss, pss = rss + kib, pss + pss_kib
        procs.append({"pid": p, "rss_mib": round(kib / 1024, 1)})
    return {
        "rss_mib": round(rss / 1024, 1),
        "pss_mib": round(pss / 1024, 1),
        "processes": procs,
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants that still run."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def settle(pid: int, *, idle_share: float = 0.1, window: float = 0.2, limit: float = 10.0) -> None:
    """Wait until ``pid`` and its descendants use less than ``idle_share`` of a core over
    ``window`` seconds (at most ``limit`` seconds): work left from the previous load (requests
    still in flight when wrk stopped) must not land in the next load's figures."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < idle_share * window:
            return
