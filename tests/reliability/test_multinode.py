"""Three nodes on one PostgreSQL database: a crash, a frozen lock holder and a skewed clock.

Three ``consent-ledger serve`` processes (two workers each) start together on one empty schema
with one shared signing key, signing a checkpoint every second. Client threads post unique 8x8
STOP webhooks round-robin over the nodes; a request not answered 200 is retried on the next
node until it is acknowledged (as 8x8 retries). Mid-load node A's whole process group is
SIGKILLed; later node B is SIGSTOPped at a moment its database session holds the log lock (seen
in ``pg_locks``), left frozen past the server's idle-in-transaction timeout, then SIGKILLed, and
A is started again. Node C runs the whole time with its wall clock 10 minutes slow (libfaketime
in its processes). A reader in the test process polls the log all along.

The tests below check what the run left: every acknowledged umid once in a dense log, ``verify``,
projections equal to a rebuild, a consistent chain of checkpoints signed by the one key, no
entry time or decision moved by C's clock, and the stall a frozen lock holder causes bounded by
the time-outs of ``ledger.postgres.connection``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from ledger import merkle
from ledger.checkpoint import open_note
from ledger.entries import decode_entry
from ledger.timefmt import format_time, now_text, parse_time
from projections.ledger import ConsentLedger
from projections.rebuild import matches_rebuild

from ..pg_util import create_schema, drop_schema, require_server
from ..server_util import CLI, Server, kill_server, launch_server, wait_started
from .conftest import SMS_STOP, msisdn

pytestmark = pytest.mark.slow

WORKERS = 2
CLIENTS = 6
PHASE_S = 3.0
"""Load between two events (start, A killed, B frozen ... A back, end)."""
FROZEN_S = 14.0
"""How long B stays frozen: past the 10 s after which the server ends its transaction (and the
log lock) and its idle lease session (and the signer's job)."""
CLIENT_TIMEOUT_S = 8.0
"""Longer than the 5 s lock timeout, so a node waiting for the log lock answers 503 first."""
SKEW = timedelta(minutes=-10)
SKEW_FAKETIME = "-10m"
FAKETIME_LIBRARIES = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
DELIVERY_DEADLINE_S = 90.0


def libfaketime() -> Path | None:
    """The installed libfaketime (Debian: ``apt-get install faketime``), if any."""
    for pattern in FAKETIME_LIBRARIES:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    return None


OUTCOMES = {"STOP": "opted_out", "START": "opted_in"}


def webhook(umid: str, sender: str, timestamp: str, text: str) -> bytes:
    """An 8x8 inbound SMS from ``sender`` saying ``text``, with a fresh ``umid``, sent at
    ``timestamp``."""
    body = copy.deepcopy(SMS_STOP)
    body["payload"].update(
        umid=umid, source=sender, timestamp=timestamp, body=text, subAccountId="ACME_MKT"
    )
    return json.dumps(body).encode()


@dataclass
class Node:
    """One ``serve`` process of the deployment (``name`` is its database application name)."""

    name: str
    server: Server
    args: list[str]
    env: dict[str, str]


@dataclass
class Ack:
    """One acknowledged webhook: what was sent and what the answer said."""

    umid: str
    msisdn: str
    text: str
    timestamp: str
    position: int
    node: str
    notes: list[str]


@dataclass
class Run:
    """What one run of the cluster left for the tests to check."""

    url: str
    verifier: str
    acks: dict[str, Ack]
    twins: list[tuple[int, int]]
    failures: Counter[str]
    reader_gaps: list[str]
    reader_reads: int
    started_db: datetime
    ended_db: datetime
    bootstrap_keys: int
    head_at_freeze: int
    frozen_db: datetime
    killed_db: datetime
    signed_by: dict[int, str]
    slowest: dict[int, float]
    """The longest a webhook request took, per HTTP status (seconds)."""
    """Which node signed the checkpoint of each tree size (from the nodes' logs)."""
    frozen_holder_released_s: float
    stall_s: float
    probe: Probe
    skewed: bool
    skewed_log_time: datetime | None
    decisions: list[tuple[str, dict[str, Any], dict[str, Any]]]
    decision_window: tuple[datetime, datetime]
    runtime_s: float


@dataclass
class Probe:
    """``consent-ledger record`` run while B is frozen holding the log lock, then again."""

    key: str
    frozen_rc: int
    frozen_s: float
    frozen_stderr: str
    later_rc: int


PROBE_KEY = "mn-probe"


def record_probe(url: str) -> subprocess.CompletedProcess[str]:
    """An opt-out appended by the command line (its own process and connections)."""
    return subprocess.run(
        [
            str(CLI), "record", "--db", url, "--subaccount", "ACME_MKT",
            "--msisdn", "+6589000001", "--action", "opt_out", "--idempotency-key", PROBE_KEY,
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# -- the database seen from outside the nodes ---------------------------------------------------
def database_now(url: str) -> datetime:
    """The database server's clock."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


class LockWatch:
    """Which node's session holds the log's advisory lock (``pg_locks``), on one connection."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        row = self.conn.execute(
            "SELECT hashtextextended(current_schema() || '/consent-ledger/log', 0)"
        ).fetchone()
        assert row is not None
        key = int(row[0]) & 0xFFFF_FFFF_FFFF_FFFF
        self.classid, self.objid = key >> 32, key & 0xFFFF_FFFF

    def holder(self) -> str | None:
        """The application name of the session holding the log lock now, if any."""
        row = self.conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::text::bigint = %s AND l.objid::text::bigint = %s "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (self.classid, self.objid),
        ).fetchone()
        return None if row is None else str(row[0])

    def head(self) -> int:
        """The newest committed position."""
        row = self.conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        self.conn.close()


# -- load ---------------------------------------------------------------------------------------
class Load:
    """Client threads posting unique webhooks round-robin, each retried until acknowledged."""

    def __init__(self, nodes: list[Node], key: str) -> None:
        self.use(nodes)
        self.headers = {"Authorization": f"Bearer {key}"}
        self.acks: dict[str, Ack] = {}
        self.failures: Counter[str] = Counter()
        self.errors: list[str] = []
        self.twins: list[tuple[int, int]] = []
        """The positions both nodes answered for one webhook sent to two at once."""
        self.stop = threading.Event()
        self._mutex = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(no,), daemon=True) for no in range(CLIENTS)
        ]

    def use(self, nodes: list[Node]) -> None:
        """Send to ``nodes`` from now on (round-robin, a retry to the next)."""
        self.urls = [node.server.url for node in nodes]
        self.names = [node.name for node in nodes]

    def send_one(self) -> None:
        """One webhook, from this thread, until acknowledged."""
        with httpx.Client(timeout=CLIENT_TIMEOUT_S, headers=self.headers) as http:
            self._deliver(http, 0, f"mn-{uuid.uuid4()}", msisdn(299_999), "STOP", now_text())

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        """Stop sending new webhooks and wait until every one sent is acknowledged."""
        self.stop.set()
        for thread in self._threads:
            thread.join(DELIVERY_DEADLINE_S + CLIENT_TIMEOUT_S)
        assert not any(t.is_alive() for t in self._threads), "a client never got its answer"
        assert not self.errors, self.errors

    def _client(self, no: int) -> None:
        """Messages about fresh numbers: a STOP; every third number then sends START (later,
        through another node); every fifth message goes to two nodes at once (as 8x8 retries
        one whose answer is late), and both answers must name one position."""
        http = httpx.Client(
            timeout=CLIENT_TIMEOUT_S,
            headers=self.headers,
            limits=httpx.Limits(max_keepalive_connections=0),  # any worker may take each one
        )
        twin = ThreadPoolExecutor(1)
        try:
            i = 0
            while not self.stop.is_set():
                n = no * 10_000 + i // 2
                text = "START" if i % 2 else "STOP"
                if text == "STOP" or n % 3 == 0:
                    umid, first = f"mn-{uuid.uuid4()}", (no + i) % len(self.urls)
                    message = (umid, msisdn(300_000 + n), text, now_text())
                    if i % 5 == 0:
                        other = twin.submit(self._deliver, http, first + 1, *message)
                        ack = self._deliver(http, first, *message)
                        self.twins.append((ack.position, other.result().position))
                    else:
                        self._deliver(http, first, *message)
                i += 1
        except Exception as exc:  # reported by ``finish``
            self.errors.append(repr(exc))
        finally:
            twin.shutdown()
            http.close()

    def _deliver(
        self, http: httpx.Client, first: int, umid: str, number: str, text: str, sent: str
    ) -> Ack:
        """Send one webhook to node ``first``, then to the next and so on, until one answers
        200; what it answered."""
        body = webhook(umid, number, sent, text)
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        attempt = 0
        while True:
            node = (first + attempt) % len(self.urls)
            try:
                r = http.post(self.urls[node] + "/v1/webhooks/8x8", content=body)
            except httpx.TransportError as exc:
                failure = type(exc).__name__
            else:
                if r.status_code == 200:
                    answer = r.json()
                    assert answer["outcome"] == OUTCOMES[text], answer
                    ack = Ack(
                        umid, number, text, sent, answer["position"], self.names[node],
                        answer["notes"],
                    )  # fmt: skip
                    with self._mutex:
                        self.acks.setdefault(umid, ack)
                    return ack
                failure = str(r.status_code)
            with self._mutex:
                self.failures[failure] += 1
            attempt += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{umid} was never acknowledged ({failure} last)")
            if attempt % len(self.urls) == 0:
                time.sleep(0.2)  # every node said no: back off a little, as 8x8 does


class Reader:
    """Polls the log through the ledger's read API and records any gap it sees: a position
    missing below one it has already seen."""

    def __init__(self, url: str) -> None:
        self.ledger = ConsentLedger(url)
        self.seen = 0
        self.reads = 0
        self.gaps: list[str] = []
        self.advanced: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(30)
        self.ledger.close()

    def first_advance_after(self, moment: float, position: int) -> float | None:
        """When the reader first saw the log grow past ``position`` after ``moment``."""
        for at, seen in self.advanced:
            if at >= moment and seen > position:
                return at
        return None

    def _poll(self) -> None:
        store = self.ledger.store
        while not self.stop.is_set():
            try:
                head = store.head()
                got = [e.position for e in store.read_from(self.seen + 1, 100_000)]
            except Exception as exc:
                self.gaps.append(f"read failed: {exc!r}")
                return
            self.reads += 1
            expected = list(range(self.seen + 1, self.seen + 1 + len(got)))
            if got != expected:
                self.gaps.append(f"after {self.seen} the log showed {got[:5]}...")
                return
            if head > self.seen + len(got):
                self.gaps.append(f"head {head} but only {self.seen + len(got)} readable after")
            if got:
                self.seen = got[-1]
                self.advanced.append((time.monotonic(), self.seen))
            time.sleep(0.01)


# -- the cluster --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Run the scenario of the module docstring once; the tests check what it left."""
    require_server()
    schema, url = create_schema(f"mn_{uuid.uuid4().hex[:12]}")
    try:
        yield scenario(url, tmp_path_factory.mktemp("multinode"))
    finally:
        drop_schema(schema)


def node_url(url: str, name: str) -> str:
    """``url`` with the node's own ``application_name`` (how ``pg_stat_activity`` names it)."""
    return f"{url}&application_name={name}"


def launch(where: Path, url: str, name: str, key_file: Path, env: dict[str, str]) -> Node:
    """Start node ``name`` (its files under ``where``) without waiting for it."""
    args = ["--signing-key", str(key_file), "--checkpoint-interval", "1"]
    server = launch_server(where, WORKERS, node_url(url, name), args=args, env=env)
    return Node(name, server, args, env)


def skew_environment() -> dict[str, str]:
    """Node C's environment: libfaketime preloaded, its wall clock 10 minutes slow. Without
    libfaketime C runs unskewed and the skew test skips (fails under CI)."""
    library = libfaketime()
    if library is None:
        return {}
    return {
        "LD_PRELOAD": str(library),
        "FAKETIME": SKEW_FAKETIME,
        "DONT_FAKE_MONOTONIC": "1",  # the wall clock is what a misconfigured node gets wrong
    }


def scenario(url: str, tmp: Path) -> Run:
    began = time.monotonic()
    key_file = tmp / "signing-key"
    made = subprocess.run(
        [str(CLI), "signing-key", "new", "--out", str(key_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    verifier = made.stdout.strip().splitlines()[-1]
    started_db = database_now(url)
    skew = skew_environment()
    b = launch(tmp / "b", url, "mn-b", key_file, {})
    nodes, launched = [b], [b]
    watch: LockWatch | None = None
    reader: Reader | None = None
    load: Load | None = None
    try:
        # B starts first, on the empty database: it prints the admin key and, alone, becomes
        # the deployment's checkpoint signer (it keeps the lease while it runs).
        wait_started(b.server, WORKERS)
        admin = b.server.key
        assert admin is not None, "no bootstrap admin key on an empty database"
        load = Load([b], admin)
        load.send_one()
        wait_until_signed(b)
        a = launch(tmp / "a", url, "mn-a", key_file, {})
        c = launch(tmp / "c", url, "mn-c", key_file, skew)
        nodes = [a, b, c]
        launched += [a, c]
        for node in (a, c):
            wait_started(node.server, WORKERS)
        keys = [node.server.key for node in launched if node.server.key is not None]
        watch = LockWatch(url)
        reader = Reader(url)
        reader.start()
        load.use(nodes)
        load.start()

        time.sleep(PHASE_S)
        kill_server(a.server)
        time.sleep(PHASE_S)

        frozen_at, head_at_freeze = freeze_holding_the_lock(b, watch)
        frozen_db = database_now(url)
        a = nodes[0] = launch(tmp / "a-again", url, "mn-a", key_file, {})  # A comes back
        launched.append(a)
        load.use(nodes)
        probing: list[tuple[subprocess.CompletedProcess[str], float]] = []
        probe_thread = threading.Thread(target=lambda: probing.append(timed(record_probe, url)))
        probe_thread.start()
        released = wait_released(watch, "mn-b", frozen_at)
        probe_thread.join()
        time.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))
        killed_db = database_now(url)
        kill_server(b.server)
        (frozen_probe, frozen_s), later_probe = probing[0], record_probe(url)
        probe = Probe(
            PROBE_KEY,
            frozen_probe.returncode,
            frozen_s,
            frozen_probe.stderr,
            later_probe.returncode,
        )
        wait_started(a.server, WORKERS)
        time.sleep(PHASE_S)
        load.finish()
        reader.finish()
        advanced = reader.first_advance_after(frozen_at, head_at_freeze)
        assert advanced is not None, "the log never grew again after B froze"

        wait_for_checkpoint(url)
        decisions, window = compare_decisions(a, c, load, keys[0], url)
        ended_db = database_now(url)
        return Run(
            url=url,
            verifier=verifier,
            acks=load.acks,
            twins=load.twins,
            failures=load.failures,
            reader_gaps=reader.gaps,
            reader_reads=reader.reads,
            started_db=started_db,
            ended_db=ended_db,
            bootstrap_keys=len(keys),
            head_at_freeze=head_at_freeze,
            frozen_db=frozen_db,
            killed_db=killed_db,
            signed_by=signers(launched),
            slowest=slowest_webhooks(launched),
            frozen_holder_released_s=released - frozen_at,
            stall_s=advanced - frozen_at,
            probe=probe,
            skewed=bool(skew),
            skewed_log_time=last_log_time(c.server),
            decisions=decisions,
            decision_window=window,
            runtime_s=time.monotonic() - began,
        )
    finally:
        if load is not None:
            load.stop.set()
        if reader is not None:
            reader.stop.set()
        if watch is not None:
            watch.close()
        for node in launched:
            with contextlib.suppress(Exception):
                os.killpg(node.server.process.pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                kill_server(node.server)


def freeze_holding_the_lock(node: Node, watch: LockWatch) -> tuple[float, int]:
    """SIGSTOP ``node``'s whole process group at a moment its session holds the log lock
    (checked again once any statement in flight has had time to finish; otherwise resumed and
    tried again). Returns when it froze and the log's head then."""
    group = node.server.process.pid
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if watch.holder() != node.name:
            time.sleep(0.001)
            continue
        os.killpg(group, signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(0.3)
        if watch.holder() == node.name:
            return frozen_at, watch.head()  # nobody else can append now
        os.killpg(group, signal.SIGCONT)  # it let go before it stopped: try again
    raise AssertionError(f"{node.name} never held the log lock at a moment it could be stopped")


def wait_until_signed(node: Node) -> None:
    """Wait until ``node`` has signed a checkpoint."""
    deadline = time.monotonic() + 20
    while "checkpoint signed" not in node.server.log():
        assert time.monotonic() < deadline, (
            f"{node.name} signed no checkpoint:\n{node.server.log()}"
        )
        time.sleep(0.1)


def slowest_webhooks(servers: list[Node]) -> dict[int, float]:
    """The longest a webhook request took on any node, in seconds, per HTTP status answered
    (from the nodes' request logs)."""
    out: dict[int, float] = {}
    for node in servers:
        for line in node.server.log().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "request" and event.get("route") == "/v1/webhooks/8x8":
                    status, took = int(event["status"]), float(event["duration_ms"]) / 1000
                    out[status] = max(out.get(status, 0.0), took)
    return out


def signers(servers: list[Node]) -> dict[int, str]:
    """Tree size -> the node whose log says it signed that checkpoint."""
    out = {}
    for node in servers:
        for line in node.server.log().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "checkpoint signed":
                    out[int(event["tree_size"])] = node.name
    return out


def timed(
    run: Callable[[str], subprocess.CompletedProcess[str]], url: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``run(url)`` and how long it took."""
    began = time.monotonic()
    done = run(url)
    return done, time.monotonic() - began


def wait_released(watch: LockWatch, name: str, since: float) -> float:
    """When the server took the log lock away from the frozen node ``name``."""
    deadline = since + 60
    while watch.holder() == name:
        assert time.monotonic() < deadline, f"{name} kept the log lock for a minute"
        time.sleep(0.05)
    return time.monotonic()


def wait_for_checkpoint(url: str) -> None:
    """Wait until a checkpoint covers the whole log (the deployment's one signer signs every
    second; after the kills, a surviving or restarted node has taken the job over)."""
    ledger = ConsentLedger(url)
    try:
        deadline = time.monotonic() + 20
        while True:
            latest = ledger.latest_checkpoint()
            if latest is not None and latest.size == ledger.head():
                return
            assert time.monotonic() < deadline, "no checkpoint covers the log after the load"
            time.sleep(0.2)
    finally:
        ledger.close()


def by_position(ack: Ack) -> int:
    return ack.position


def expected_states(acks: dict[str, Ack]) -> dict[str, str]:
    """Each number's consent state after its last acknowledged message."""
    return {a.msisdn: OUTCOMES[a.text] for a in sorted(acks.values(), key=by_position)}


def compare_decisions(
    plain: Node, skewed: Node, load: Load, key: str, url: str
) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any]]], tuple[datetime, datetime]]:
    """The decision for a sample of numbers (and one never seen) on both nodes, and the
    database's clock around the asking."""
    numbers = list(dict.fromkeys(a.msisdn for a in sorted(load.acks.values(), key=by_position)))
    sample = [*numbers[:: max(1, len(numbers) // 40)], "+6589999999"]
    headers = {"Authorization": f"Bearer {key}"}
    before = database_now(url)
    out = []
    with httpx.Client(headers=headers, timeout=10) as http:
        for number in sample:
            path = f"/v1/consent/ACME_MKT/{quote(number)}"
            here, there = http.get(skewed.server.url + path), http.get(plain.server.url + path)
            assert here.status_code == there.status_code == 200, (here.text, there.text)
            out.append((number, here.json(), there.json()))
    return out, (before, database_now(url))


def last_log_time(server: Server) -> datetime | None:
    """The time stamp of the last JSON log line ``server`` wrote (its own clock's)."""
    for line in reversed(server.log().splitlines()):
        with contextlib.suppress(ValueError, KeyError):
            return parse_time(json.loads(line)["timestamp"])
    return None


# -- the tests ----------------------------------------------------------------------------------
def log_entries(url: str) -> list[dict[str, Any]]:
    ledger = ConsentLedger(url)
    try:
        stored = ledger.store.read_from(1, 1_000_000)
    finally:
        ledger.close()
    return [{"position": s.position, "data": s.data, **msgspec_entry(s.data)} for s in stored]


def msgspec_entry(data: bytes) -> dict[str, Any]:
    entry = decode_entry(data)
    return {
        "key": entry.key,
        "type": entry.type,
        "msisdn": entry.msisdn,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
    }


def test_every_acknowledged_webhook_is_in_a_dense_log_once(run: Run) -> None:
    entries = log_entries(run.url)
    positions = [e["position"] for e in entries]
    assert positions == list(range(1, len(entries) + 1)), "positions are not 1..n"
    consent = ("consent.revoked", "consent.granted")
    keys = Counter(e["key"] for e in entries if e["type"] in consent)
    assert set(keys) == {f"8x8:{umid}" for umid in run.acks} | {f"api:{run.probe.key}"}
    assert max(keys.values()) == 1, "an umid is in the log twice"
    at = {e["key"]: e["position"] for e in entries}
    assert all(at[f"8x8:{a.umid}"] == a.position for a in run.acks.values())
    others = [e["type"] for e in entries if e["type"] not in consent]
    assert others == ["subaccount.configured"], others  # registered once, by one node
    assert run.twins, "no webhook went to two nodes at once"
    assert all(one == other for one, other in run.twins), "two nodes, two positions, one umid"
    assert run.bootstrap_keys == 1, "two nodes each created a bootstrap key"
    by_node = Counter(a.node for a in run.acks.values())
    assert all(by_node[name] > 0 for name in ("mn-a", "mn-b", "mn-c")), by_node
    assert not run.reader_gaps, run.reader_gaps
    assert run.reader_reads > 100


def test_verify_rebuild_and_checkpoints_hold(run: Run) -> None:
    done = subprocess.run(
        [str(CLI), "verify", "--db", run.url, "--key", run.verifier],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"verify failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["projections_match_rebuild"] is True

    ledger = ConsentLedger(run.url)
    try:
        assert matches_rebuild(ledger)
        leaves = [s.data for s in ledger.store.read_from(1, 1_000_000)]
        records = ledger.read_model.checkpoints_since(0, 100_000)
    finally:
        ledger.close()
    assert len(records) >= 5, "the deployment hardly signed"
    # B signed from the start; frozen, it gave the job up, and another node signed before B died.
    frozen, killed = format_time(run.frozen_db), format_time(run.killed_db)
    early = {r.size: run.signed_by.get(r.size) for r in records if r.signed_at < frozen}
    assert early
    assert set(early.values()) == {"mn-b"}, early
    taken_over = [r for r in records if frozen < r.signed_at < killed]
    assert taken_over, "no checkpoint was signed while the signer was frozen"
    assert all(run.signed_by.get(r.size) not in (None, "mn-b") for r in taken_over)
    assert records[-1].size == len(leaves)
    previous = None
    for record in records:
        checkpoint = open_note(record.note, run.verifier)  # signed by the one key
        assert (checkpoint.size, checkpoint.root) == (record.size, record.root)
        assert record.root == merkle.root_hash(leaves[: record.size])
        if previous is not None:
            assert previous.size < record.size
            proof = merkle.consistency_proof(previous.size, leaves[: record.size])
            assert merkle.verify_consistency(
                previous.size, record.size, previous.root, record.root, proof
            )
        previous = record


def test_a_frozen_lock_holder_stalls_the_cluster_only_until_the_server_frees_the_lock(
    run: Run,
) -> None:
    print(  # the figures of the report (pytest -s)
        f"\nmultinode: {len(run.acks)} webhooks acknowledged in {run.runtime_s:.1f} s; "
        f"B frozen holding the log lock: freed by the server after "
        f"{run.frozen_holder_released_s:.1f} s, log grew again after {run.stall_s:.1f} s; "
        f"an append waiting meanwhile gave up after {run.probe.frozen_s:.1f} s; "
        f"failed attempts {dict(run.failures)}; slowest answers (s) by status "
        f"{ {k: round(v, 1) for k, v in run.slowest.items()} }"
    )
    # idle_in_transaction_session_timeout (10 s) ends B's transaction, freeing the lock ...
    assert 9.0 <= run.frozen_holder_released_s <= 13.0
    assert run.stall_s <= run.frozen_holder_released_s + 6.0
    # ... and a writer waiting for it meanwhile gives up after lock_timeout (5 s), unwritten
    # (the API answers 503, 8x8 retries): the command line's opt-out, started as B froze.
    assert run.probe.frozen_rc != 0, "an append went through while B held the log lock"
    assert "lock timeout" in run.probe.frozen_stderr, run.probe.frozen_stderr
    assert run.probe.frozen_s < run.frozen_holder_released_s
    assert run.probe.later_rc == 0
    # A webhook queued behind a batch waiting for the lock waits at most for that batch and for
    # its own: about twice lock_timeout.
    assert max(run.slowest.values()) <= 13.0, run.slowest


def test_a_skewed_node_moves_no_time_and_no_decision(run: Run) -> None:
    if not run.skewed:
        reason = "libfaketime is not installed (apt-get install faketime): no skewed node"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert run.skewed_log_time is not None
    assert run.skewed_log_time < run.ended_db + SKEW + timedelta(minutes=1), "C was not skewed"

    entries = log_entries(run.url)
    low, high = format_time(run.started_db), format_time(run.ended_db)
    recorded = [e["recorded_at"] for e in entries]
    assert all(low <= r <= high for r in recorded), "a recorded time outside the test"
    assert recorded == sorted(recorded), "recorded time went back as positions grew"
    occurred = {e["key"]: e["occurred_at"] for e in entries}
    assert all(occurred[f"8x8:{a.umid}"] == a.timestamp for a in run.acks.values())
    replaced = [(a.node, n) for a in run.acks.values() for n in a.notes if "occurred_at" in n]
    assert not replaced, replaced[:5]
    by_c = [a for a in run.acks.values() if a.node == "mn-c"]
    assert len(by_c) > len(run.acks) // 5

    first, last = (format_time(t) for t in run.decision_window)
    for number, skewed, plain in run.decisions:
        assert first <= skewed["at"] <= last, (number, skewed["at"])
        for field_name in ("allowed", "state", "decided_by", "reason"):
            assert skewed[field_name] == plain[field_name], (number, skewed, plain)
    expected = expected_states(run.acks)
    for number, skewed, _ in run.decisions:
        assert skewed["state"] == expected.get(number, "unknown"), (number, skewed)
    assert "opted_in" in {d["state"] for _, d, _ in run.decisions}
