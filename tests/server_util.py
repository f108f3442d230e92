"""Running the real server in tests: ``consent-ledger serve`` as a subprocess on loopback.

The server is the leader of its own process group, so a test can stop it gracefully (SIGTERM /
SIGINT), or kill the whole group at once (SIGKILL: the crash tests), and always leaves nothing
running behind it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from api import serve

CLI = Path(sys.executable).with_name("consent-ledger")
KEY_LINE = re.compile(r"^\s+(cl_[a-z0-9]{12}_[A-Za-z0-9_-]{20,128})\s*$", re.MULTILINE)
START_TIMEOUT_S = 60


@dataclass
class Server:
    """A running ``consent-ledger serve`` subprocess (leader of its own process group)."""

    process: subprocess.Popen[bytes]
    url: str
    key: str | None
    stderr: Path
    db: Path | str

    def log(self) -> str:
        """Everything the server wrote on stderr so far."""
        return self.stderr.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The worker processes' pids (Linux /proc)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [p for p in pids if b"spawn_main" in _cmdline(p)]

    def metrics_dir(self) -> Path:
        """The directory where the workers share their counters."""
        for pid in self.workers():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            for item in env:
                if item.startswith(serve.MULTIPROC_ENV.encode() + b"="):
                    return Path(item.split(b"=", 1)[1].decode())
        raise AssertionError("no worker has a metrics directory")

    def counted_by_worker(self, counter: str) -> dict[int, float]:
        """Each worker's own total of the Prometheus counter ``counter`` (every label), read
        from its file in the shared metrics directory."""
        counts = {}
        for pid in self.workers():
            own = self.stderr.parent / f"metrics-{pid}"
            own.mkdir(exist_ok=True)
            source = self.metrics_dir() / f"counter_{pid}.db"
            if source.exists():
                shutil.copy(source, own / source.name)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(own))
            counts[pid] = sum(
                sample.value
                for family in registry.collect()
                for sample in family.samples
                if sample.name == counter
            )
        return counts


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process has just exited
        return b""


def fresh_connections(server: Server, timeout: float = 30) -> httpx.Client:
    """An HTTP client that opens a new connection for every request (so the kernel may hand
    each one to any worker); safe to share between threads."""
    return httpx.Client(
        base_url=server.url,
        timeout=timeout,
        headers={"Authorization": f"Bearer {server.key}"},
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_environment() -> dict[str, str]:
    """This process's environment without any setting meant for the server."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONSENT_LEDGER_", serve.MULTIPROC_ENV))
    }


def start_server(directory: Path, workers: int = 2, db: Path | str | None = None) -> Server:
    """Start the server (on ``db``, default ``directory/ledger.db``) and wait until every worker
    has started and ``/readyz`` answers 200; ``key`` is the admin key printed on an empty
    database (``None`` when the database already had keys)."""
    server = launch_server(directory, workers, db)
    wait_started(server, workers)
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    return server


def launch_server(
    directory: Path,
    workers: int = 2,
    db: Path | str | None = None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``consent-ledger serve`` (on ``db``: a path or URL, default
    ``directory/ledger.db``) without waiting for it; ``args`` are added to its command line
    (a later option wins over the defaults here), ``env`` to its environment."""
    directory.mkdir(parents=True, exist_ok=True)
    db = db or directory / "ledger.db"
    port = free_port()
    stderr = directory / "server.stderr"
    process = subprocess.Popen(
        [
            str(CLI),
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-format",
            "json",
            "--checkpoint-interval",
            "0",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
        env={**_clean_environment(), **(env or {})},
        start_new_session=True,
    )
    return Server(process, f"http://127.0.0.1:{port}", None, stderr, db)


def wait_started(server: Server, workers: int) -> None:
    """Wait until each of ``workers`` has started (failing the test if the server exits or
    takes longer than ``START_TIMEOUT_S``); sets ``server.key`` to the admin key it printed
    on an empty database, if any."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while server.log().count("Application startup complete") < workers:
        if server.process.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            pytest.fail(f"the server did not start:\n{server.log()}")
        time.sleep(0.05)
    found = KEY_LINE.findall(server.log())
    server.key = found[0] if found else None


def stop_server(server: Server, sig: int = signal.SIGTERM) -> int | None:
    """Stop the server with ``sig``; kill whatever is left of its process group."""
    code = None
    try:
        if server.process.poll() is None:
            server.process.send_signal(sig)
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    return code


def kill_server(server: Server) -> None:
    """Crash the server: SIGKILL to its whole process group at once (leader and workers), then
    wait until none of them runs any more (orphaned workers may linger as zombies)."""
    pids = [server.process.pid, *server.workers()]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise AssertionError("a server process survived SIGKILL")
        time.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")
