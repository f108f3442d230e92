"""``consent-ledger serve``: the real server, several workers on one SQLite file.

The slow tests start the installed console script as a subprocess on a free port and talk to it
over loopback with httpx, the way the README walkthrough does.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from api import asgi, serve
from api.cli import main
from api.keys import SCOPES, list_keys
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys

from ..server_util import CLI, KEY_LINE, Server, start_server, stop_server
from .conftest import basic, bearer, fixture_body

NUMBER = "%2B6581968289"


# -- preparing the database (fast) --------------------------------------------------------------
def test_bootstrap_creates_one_admin_key_on_an_empty_database(tmp_path: Path) -> None:
    db = tmp_path / "new" / "ledger.db"
    key = serve.bootstrap(db)
    assert key is not None
    assert KEY_LINE.match("  " + key)
    assert serve.bootstrap(db) is None
    conn = connect(db)
    [info] = list_keys(SqliteKeys(conn))
    conn.close()
    assert (info.tenant, info.scopes, info.revoked_at) == ("default", list(SCOPES), None)
    assert key.split("_")[1] == info.id


def test_bootstrap_creates_no_key_when_keys_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.db"
    assert main(["keys", "create", "--db", str(db), "--tenant", "acme", "--scopes", "check"]) == 0
    assert serve.bootstrap(db) is None
    conn = connect(db)
    assert [k.tenant for k in list_keys(SqliteKeys(conn))] == ["acme"]
    conn.close()


def test_the_key_is_announced_framed() -> None:
    out = io.StringIO()
    serve.announce_key("cl_000000000000_" + "x" * 43, out)
    text = out.getvalue()
    assert KEY_LINE.findall(text) == ["cl_000000000000_" + "x" * 43]
    assert text.count("=" * 76) == 2
    assert "ONCE" in text


def test_workers_read_their_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        db=tmp_path / "w.db", origin="example.org/log", checkpoint_interval=0, log_format="json"
    )
    assert Settings.from_env(settings.to_env()) == settings
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    interval = sys.getswitchinterval()
    try:
        with TestClient(asgi.create()) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            assert gc.get_freeze_count() > 0  # the started worker's heap is settled
            assert sys.getswitchinterval() == asgi.SWITCH_INTERVAL
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
    assert Path(settings.db).exists()


def test_the_metrics_directory_is_private_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serve.MULTIPROC_ENV, raising=False)
    with serve.shared_metrics_dir() as path:
        assert os.environ[serve.MULTIPROC_ENV] == str(path)
        assert path.is_dir()
        assert path.stat().st_mode & 0o077 == 0
    assert not path.exists()
    assert serve.MULTIPROC_ENV not in os.environ


def test_a_metrics_directory_set_by_the_operator_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "metrics"
    monkeypatch.setenv(serve.MULTIPROC_ENV, str(mine))
    with serve.shared_metrics_dir() as path:
        assert path == mine
        assert mine.is_dir()
    assert mine.is_dir()
    assert os.environ[serve.MULTIPROC_ENV] == str(mine)


# -- the real server (slow) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running)


def json_lines_after_the_key_frame(log: str) -> list[dict[str, object]]:
    """The log stream: every line after the framed key must be one JSON object."""
    tail = log.rsplit("=" * 76 + "\n", 1)[-1]
    return [json.loads(line) for line in tail.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_walkthrough_against_the_real_server(server: Server) -> None:
    assert server.key is not None, "the admin key was not printed on stderr"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        webhook = {**basic(server.key), "Content-Type": "application/json"}
        stop = http.post(
            "/v1/webhooks/8x8", content=fixture_body("inbound-sms-stop.json"), headers=webhook
        )
        assert stop.status_code == 200, stop.text
        assert stop.json()["outcome"] == "opted_out"
        stopped_at = stop.json()["position"]

        check = http.get(f"/v1/consent/ACME_MKT/{NUMBER}", headers=bearer(server.key))
        assert check.status_code == 200, check.text
        assert check.json()["allowed"] is False
        assert check.json()["msisdn"] == "+6581968289"
        assert check.json()["decided_by"]["position"] == stopped_at

        start = http.post(
            "/v1/webhooks/8x8", content=fixture_body("inbound-sms-start.json"), headers=webhook
        )
        assert start.status_code == 200, start.text
        assert start.json()["outcome"] == "opted_in"
        assert (
            http.get(f"/v1/consent/ACME_MKT/{NUMBER}", headers=bearer(server.key)).json()["allowed"]
            is True
        )

        audit = http.get(f"/v1/audit/ACME_MKT/{NUMBER}", headers=bearer(server.key))
        assert audit.status_code == 200, audit.text
        entries = audit.json()["entries"]
        assert [e["type"] for e in entries] == ["consent.revoked", "consent.granted"]
        assert [e["position"] for e in entries] == [stopped_at, start.json()["position"]]
        assert [e["keyword"].upper() for e in entries] == ["STOP", "START"]
    log = server.log()
    assert log.count(server.key) == 1, "the key must be shown once, never logged"
    assert "6581968289" not in log, "numbers are masked in logs"


@pytest.mark.slow
def test_webhook_retries_across_workers_write_one_entry(server: Server) -> None:
    assert server.key is not None
    body = json.loads(fixture_body("inbound-sms-stop.json"))
    body["payload"]["umid"] = "retry-across-workers-0001"
    headers = basic(server.key)
    answers = [
        httpx.post(server.url + "/v1/webhooks/8x8", json=body, headers=headers, timeout=10)
        for _ in range(6)
    ]  # a new connection each time: any worker may answer
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["position"] for a in answers}) == 1
    assert [bool(a.json().get("duplicate")) for a in answers] == [False] + [True] * 5


def requests_total(metrics_text: str, route: str) -> float:
    """The summed request counter for one route in a Prometheus exposition."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "consent_ledger_requests_total" and sample.labels["route"] == route:
                total += sample.value
    return total


def worker_counts(server: Server, route: str) -> dict[int, float]:
    """Each worker's own request count for ``route``, read from its file in the shared dir."""
    counts = {}
    for pid in server.workers():
        own = server.stderr.parent / f"metrics-{pid}"
        own.mkdir(exist_ok=True)
        source = server.metrics_dir() / f"counter_{pid}.db"
        if source.exists():
            shutil.copy(source, own / source.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(own))
        labels = {"route": route, "method": "GET", "status": "200"}
        counts[pid] = registry.get_sample_value("consent_ledger_requests_total", labels) or 0.0
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_metrics_add_up_every_workers_requests(server: Server) -> None:
    before = requests_total(httpx.get(server.url + "/metrics").text, "/healthz")
    sent = 0
    while sent < 2000:  # until both workers have answered some (the kernel picks the worker)
        for _ in range(25):
            assert httpx.get(server.url + "/healthz").status_code == 200  # new connection
        sent += 25
        if min(worker_counts(server, "/healthz").values()) > 0:
            break
    scraped = requests_total(httpx.get(server.url + "/metrics").text, "/healthz")
    assert scraped - before == sent
    per_worker = worker_counts(server, "/healthz")
    assert len(per_worker) == 2
    assert min(per_worker.values()) > 0
    assert sum(per_worker.values()) == scraped


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A: LISTEN
            found.add(fields[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_each_worker_listens_on_its_own_socket_and_gets_connections(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    listening = _listening_inodes(port)
    workers = server.workers()
    assert len(listening) == len(workers) == 2
    for pid in workers:  # one listening socket in each worker
        assert len(listening & _socket_inodes(pid)) == 1
    before = worker_counts(server, "/healthz")
    clients = [httpx.Client(base_url=server.url) for _ in range(24)]  # a keep-alive pool
    try:
        for client in clients:
            assert client.get("/healthz").status_code == 200
    finally:
        for client in clients:
            client.close()
    after = worker_counts(server, "/healthz")
    assert all(after[pid] > before.get(pid, 0) for pid in workers)  # both answered some


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_killed_worker_is_replaced_by_one_listening_on_its_own_socket(tmp_path: Path) -> None:
    running = start_server(tmp_path, workers=2)
    try:
        port = int(running.url.rsplit(":", 1)[1])
        victim = running.workers()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (
            len(running.workers()) == 2
            and victim not in running.workers()
            and len(_listening_inodes(port)) == 2
        ):
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.1)
        for pid in running.workers():
            assert len(_listening_inodes(port) & _socket_inodes(pid)) == 1
        with httpx.Client(base_url=running.url) as client:
            assert all(client.get("/healthz").status_code == 200 for _ in range(20))
    finally:
        stop_server(running)


@pytest.mark.slow
def test_serve_refuses_an_address_in_use_before_starting_workers(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                str(CLI),
                "serve",
                "--db",
                str(tmp_path / "l.db"),
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == serve.ADDRESS_IN_USE
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Application startup complete" not in done.stderr


@pytest.mark.slow
def test_the_log_stream_is_json_lines(server: Server) -> None:
    httpx.get(server.url + "/healthz", headers={"X-Request-ID": "trace-me-0001"})
    deadline = time.monotonic() + 5  # the line is written once the response has been sent
    while True:
        lines = json_lines_after_the_key_frame(server.log())
        mine = [line for line in lines if line.get("request_id") == "trace-me-0001"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    [mine] = mine
    assert (mine["route"], mine["status"]) == ("/healthz", 200)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "workers"), [(signal.SIGTERM, 2), (signal.SIGINT, 1)], ids=["SIGTERM-2", "SIGINT-1"]
)
def test_the_server_stops_cleanly(tmp_path: Path, sig: int, workers: int) -> None:
    running = start_server(tmp_path, workers=workers)
    metrics_dir = running.metrics_dir() if workers > 1 and Path("/proc").exists() else None
    assert httpx.get(running.url + "/healthz").status_code == 200
    assert stop_server(running, sig) == 0
    log = running.log()
    assert "Traceback" not in log
    assert json_lines_after_the_key_frame(log)[-1]["logger"] == "uvicorn.error"
    with pytest.raises(ProcessLookupError):
        os.killpg(running.process.pid, 0)  # nothing of the server's process group is left
    if metrics_dir is not None:
        assert not metrics_dir.exists()
    restarted = start_server(tmp_path, workers=1)  # same database: no second admin key
    try:
        assert restarted.key is None
        assert httpx.get(restarted.url + "/readyz").json()["status"] == "ready"
    finally:
        assert stop_server(restarted) == 0
