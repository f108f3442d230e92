"""The log over HTTP: checkpoints, entries and proofs — who may read what, range checks, and an
independent client that re-derives everything from the served bytes.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient
from structlog.testing import capture_logs

from api.app import create_app
from api.checkpointer import Checkpointer
from api.cli import main
from api.settings import Settings
from api.state import Services
from ledger import merkle
from ledger.checkpoint import open_note
from ledger.sqlite.keys import SqliteKeys
from ledger.timefmt import parse_time
from projections.ledger import ConsentLedger

from .conftest import bearer

Client = TestClient  # type: ignore[type-arg]


def seed(client: Client, keys: dict[str, str], count: int = 5) -> dict[str, list[int]]:
    """Opt-outs for both tenants; returns the positions of each tenant's entries."""
    own, other = [], []
    for i in range(count):
        for key, out in (("ingest", own), ("other", other)):
            r = client.post(
                "/v1/opt-outs",
                json={"msisdn": f"+658196{i:04d}", "subaccount": "ACME_MKT"},
                headers=bearer(keys[key]),
            )
            assert r.status_code == 201, r.text
            out.append(r.json()["position"])
    return {"default": own, "other": other}


def head(client: Client, keys: dict[str, str]) -> int:
    entries = client.get("/v1/log/entries?start=1&limit=1000", headers=bearer(keys["operator"]))
    return len(entries.json())


def is_problem(r: Any, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == r.status_code
    assert body["detail"]


# -- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_is_a_signed_note_any_key_may_read(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    seed(client, keys, 2)
    for who in ("check", "ingest", "audit", "other", "operator"):
        r = client.get("/v1/log/checkpoint", headers=bearer(keys[who]))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        signer = client.app.state.services.get_signer()
        cp = open_note(r.text, signer.verifier_key)
        assert cp.origin == settings.origin
        assert str(cp.size) == r.headers["x-checkpoint-size"]
    assert client.get("/v1/log/checkpoint").status_code == 401
    assert client.get("/v1/log/checkpoint", headers=bearer(keys["revoked"])).status_code == 401


def test_checkpoint_is_signed_on_demand_only_when_there_is_none(
    client: Client, keys: dict[str, str]
) -> None:
    seed(client, keys, 1)
    r = client.get("/v1/log/checkpoints", headers=bearer(keys["check"]))
    assert r.json() == []
    first = client.get("/v1/log/checkpoint", headers=bearer(keys["check"])).text
    seed(client, keys, 1)
    assert client.get("/v1/log/checkpoint", headers=bearer(keys["check"])).text == first


def test_post_checkpoint_is_operator_only_201_when_grown_200_otherwise(
    client: Client, keys: dict[str, str]
) -> None:
    seed(client, keys, 2)
    for who in ("all", "admin", "other"):
        is_problem(client.post("/v1/log/checkpoints", headers=bearer(keys[who])), 403)
    op = bearer(keys["operator"])
    made = client.post("/v1/log/checkpoints", headers=op)
    assert made.status_code == 201
    again = client.post("/v1/log/checkpoints", headers=op)
    assert again.status_code == 200
    assert again.json() == made.json()
    seed(client, keys, 1)
    grown = client.post("/v1/log/checkpoints", headers=op)
    assert grown.status_code == 201
    assert grown.json()["size"] == made.json()["size"] + 2
    listed = client.get("/v1/log/checkpoints", headers=bearer(keys["audit"])).json()
    assert listed == [made.json(), grown.json()]
    since = client.get(f"/v1/log/checkpoints?since={made.json()['size'] + 1}", headers=op)
    assert since.json() == [grown.json()]
    limited = client.get("/v1/log/checkpoints?since=0&limit=1", headers=op)
    assert limited.json() == [made.json()]


# -- entries --------------------------------------------------------------------------------


def test_entries_are_operator_only_and_are_the_stored_bytes(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    seed(client, keys, 3)
    for who in ("all", "audit", "other"):
        is_problem(client.get("/v1/log/entries", headers=bearer(keys[who])), 403)
    r = client.get("/v1/log/entries?start=2&limit=3", headers=bearer(keys["operator"]))
    assert r.status_code == 200
    got = r.json()
    assert [e["position"] for e in got] == [2, 3, 4]
    ledger = ConsentLedger(settings.db)
    try:
        stored = ledger.store.read_from(2, 3)
    finally:
        ledger.close()
    for served, row in zip(got, stored, strict=True):
        assert base64.b64decode(served["entry"]) == row.data
        assert base64.b64decode(served["leaf_hash"]) == row.leaf_hash
    past = client.get("/v1/log/entries?start=1000", headers=bearer(keys["operator"]))
    assert past.json() == []


# -- proofs: who may have which -------------------------------------------------------------


def test_inclusion_proofs_for_a_tenant_cover_its_own_entries_only(
    client: Client, keys: dict[str, str]
) -> None:
    positions = seed(client, keys, 3)
    own, other = positions["default"][0], positions["other"][0]
    audit = bearer(keys["audit"])
    assert client.get(f"/v1/log/proof/inclusion?position={own}", headers=audit).status_code == 200
    theirs = client.get(f"/v1/log/proof/inclusion?position={other}", headers=audit)
    nowhere = client.get("/v1/log/proof/inclusion?position=999", headers=audit)
    is_problem(theirs, 404)
    is_problem(nowhere, 404)
    assert theirs.json()["detail"].replace(str(other), "N") == nowhere.json()["detail"].replace(
        "999", "N"
    )  # another tenant's position reads exactly like one that does not exist
    for who in ("check", "ingest"):  # tenant keys need the audit scope
        r = client.get(f"/v1/log/proof/inclusion?position={own}", headers=bearer(keys[who]))
        is_problem(r, 403)
    op = bearer(keys["operator"])
    assert client.get(f"/v1/log/proof/inclusion?position={other}", headers=op).status_code == 200


def test_consistency_proofs_are_for_audit_keys_and_the_operator(
    client: Client, keys: dict[str, str]
) -> None:
    seed(client, keys, 3)
    url = "/v1/log/proof/consistency?first=2&second=5"
    for who in ("audit", "other", "operator"):
        r = client.get(url, headers=bearer(keys[who]))
        assert r.status_code == 200
        assert r.json()["first"] == 2
        assert r.json()["second"] == 5
    is_problem(client.get(url, headers=bearer(keys["check"])), 403)
    assert client.get(url).status_code == 401


def test_sizes_default_to_the_latest_checkpoint(client: Client, keys: dict[str, str]) -> None:
    positions = seed(client, keys, 2)
    op = bearer(keys["operator"])
    made = client.post("/v1/log/checkpoints", headers=op).json()
    seed(client, keys, 2)  # the log grows past the checkpoint
    r = client.get(f"/v1/log/proof/inclusion?position={positions['default'][0]}", headers=op)
    assert r.json()["tree_size"] == made["size"]
    r = client.get("/v1/log/proof/consistency?first=1", headers=op)
    assert r.json()["second"] == made["size"]
    newest = head(client, keys)  # beyond the checkpoint: a new one is signed to cover it
    r = client.get(f"/v1/log/proof/inclusion?position={newest}", headers=op)
    assert r.json()["tree_size"] == newest
    latest = client.get("/v1/log/checkpoints?since=0", headers=op).json()[-1]
    assert latest["size"] == newest


# -- range validation -----------------------------------------------------------------------

BAD_QUERIES = [
    "/v1/log/proof/inclusion?position=0",
    "/v1/log/proof/inclusion?position=-1",
    "/v1/log/proof/inclusion?position=abc",
    "/v1/log/proof/inclusion?position=1.5",
    "/v1/log/proof/inclusion?position=",
    "/v1/log/proof/inclusion",
    "/v1/log/proof/inclusion?position=9223372036854775808",
    "/v1/log/proof/inclusion?position=100000000000000000000000000000",
    "/v1/log/proof/inclusion?position=9223372036854775807",
    "/v1/log/proof/inclusion?position=3&tree_size=2",
    "/v1/log/proof/inclusion?position=1&tree_size=0",
    "/v1/log/proof/inclusion?position=1&tree_size=-5",
    "/v1/log/proof/inclusion?position=1&tree_size=99",
    "/v1/log/proof/inclusion?position=1&tree_size=18446744073709551616",
    "/v1/log/proof/inclusion?position=1&tree_size=1e3",
    "/v1/log/proof/consistency?first=0&second=3",
    "/v1/log/proof/consistency?first=-1&second=3",
    "/v1/log/proof/consistency?first=4&second=3",
    "/v1/log/proof/consistency?first=1&second=99",
    "/v1/log/proof/consistency?first=x&second=3",
    "/v1/log/proof/consistency?first=1&second=9223372036854775808",
    "/v1/log/proof/consistency?first=9223372036854775807&second=9223372036854775807",
    "/v1/log/proof/consistency?second=3",
    "/v1/log/entries?start=0",
    "/v1/log/entries?start=-3",
    "/v1/log/entries?start=1&limit=0",
    "/v1/log/entries?start=1&limit=1001",
    "/v1/log/entries?start=99999999999999999999",
    "/v1/log/checkpoints?since=-1",
    "/v1/log/checkpoints?limit=0",
    "/v1/log/checkpoints?since=abc",
    "/v1/log/checkpoints?since=9223372036854775808",
]


@pytest.mark.parametrize("url", BAD_QUERIES)
def test_out_of_range_or_malformed_values_are_4xx_problems(
    client: Client, keys: dict[str, str], url: str
) -> None:
    seed(client, keys, 3)  # the log holds 6 entries
    before = head(client, keys)
    r = client.get(url, headers=bearer(keys["operator"]))
    is_problem(r, 400, 422)
    assert head(client, keys) == before


def test_tenant_range_errors_never_reveal_other_positions(
    client: Client, keys: dict[str, str]
) -> None:
    positions = seed(client, keys, 2)
    own = positions["default"][-1]
    audit = bearer(keys["audit"])
    r = client.get(f"/v1/log/proof/inclusion?position={own}&tree_size={own - 1}", headers=audit)
    is_problem(r, 422)
    r = client.get(f"/v1/log/proof/inclusion?position={own}&tree_size=99", headers=audit)
    is_problem(r, 422)


# -- an independent client ------------------------------------------------------------------


def _independent_open(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """Check a C2SP signed note from the spec's byte layout alone; returns (origin, size, root)."""
    raw = note.encode()
    cut = raw.rindex(b"\n\n") + 1
    body, signature_line = raw[:cut], raw[cut + 1 :].decode().rstrip("\n")
    name, key_id_hex, key_b64 = verifier_key.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1  # Ed25519
    dash, signer_name, sig_b64 = signature_line.split(" ")
    assert (dash, signer_name) == ("\u2014", name)
    blob = base64.b64decode(sig_b64)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4]
    assert blob[:4] == key_id == bytes.fromhex(key_id_hex)
    Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], body)
    origin, size, root = body.decode().rstrip("\n").split("\n")
    return origin, int(size), base64.b64decode(root)


def _verifier_key(settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["signing-key", "show", "--db", str(settings.db)]) == 0
    return capsys.readouterr().out.strip()


def _all_entries(client: Client, keys: dict[str, str]) -> list[bytes]:
    out: list[bytes] = []
    while True:
        page = client.get(
            f"/v1/log/entries?start={len(out) + 1}&limit=4", headers=bearer(keys["operator"])
        ).json()
        if not page:
            return out
        for e in page:
            data = base64.b64decode(e["entry"])
            assert e["position"] == len(out) + 1
            assert base64.b64decode(e["leaf_hash"]) == hashlib.sha256(b"\x00" + data).digest()
            out.append(data)


def test_an_independent_client_verifies_everything_it_is_served(
    client: Client,
    keys: dict[str, str],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    positions = seed(client, keys, 4)
    verifier = _verifier_key(settings, capsys)
    audit = bearer(keys["audit"])
    old_origin, old_size, old_root = _independent_open(
        client.get("/v1/log/checkpoint", headers=audit).text, verifier
    )
    seed(client, keys, 3)
    op = bearer(keys["operator"])
    assert client.post("/v1/log/checkpoints", headers=op).status_code == 201
    origin, size, root = _independent_open(
        client.get("/v1/log/checkpoint", headers=audit).text, verifier
    )
    assert origin == old_origin == settings.origin
    leaves = _all_entries(client, keys)
    assert len(leaves) == size
    assert merkle.root_hash(leaves) == root
    assert merkle.root_hash(leaves[:old_size]) == old_root
    for position in positions["default"]:  # the tenant proves each of its own entries
        r = client.get(f"/v1/log/proof/inclusion?position={position}", headers=audit).json()
        assert r["leaf_index"] == position - 1
        assert r["tree_size"] == size
        proof = [base64.b64decode(p) for p in r["proof"]]
        leaf = merkle.leaf_hash(leaves[position - 1])
        assert merkle.verify_inclusion(position - 1, size, leaf, proof, root)
        assert not merkle.verify_inclusion(position - 1, size, leaf, proof, old_root)
    r = client.get(
        f"/v1/log/proof/consistency?first={old_size}&second={size}", headers=audit
    ).json()
    proof = [base64.b64decode(p) for p in r["proof"]]
    assert merkle.verify_consistency(old_size, size, old_root, root, proof)
    at_old = client.get(
        f"/v1/log/proof/inclusion?position={positions['default'][0]}&tree_size={old_size}",
        headers=audit,
    ).json()
    proof = [base64.b64decode(p) for p in at_old["proof"]]
    leaf = merkle.leaf_hash(leaves[positions["default"][0] - 1])
    assert merkle.verify_inclusion(positions["default"][0] - 1, old_size, leaf, proof, old_root)


# -- OpenAPI --------------------------------------------------------------------------------


def test_every_log_endpoint_has_one_example(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()
    operations = [
        ("/v1/log/checkpoint", "get", "200"),
        ("/v1/log/checkpoints", "get", "200"),
        ("/v1/log/checkpoints", "post", "201"),
        ("/v1/log/entries", "get", "200"),
        ("/v1/log/proof/inclusion", "get", "200"),
        ("/v1/log/proof/consistency", "get", "200"),
    ]
    for path, method, status in operations:
        operation = schema["paths"][path][method]
        assert operation["summary"]
        assert operation["tags"] == ["log"]
        content = operation["responses"][status]["content"]
        (media,) = content.values()
        assert len(media["examples"]) == 1, (path, method)


# -- background checkpoints -----------------------------------------------------------------


def test_the_key_is_created_on_first_start_owner_only(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "db" / "ledger.db", log_format="json", checkpoint_interval=0)
    with TestClient(create_app(settings)):
        pass
    info = os.stat(settings.signing_key_path)
    assert stat.S_IMODE(info.st_mode) == 0o600
    key_file = tmp_path / "elsewhere.key"
    settings = Settings(db=tmp_path / "db" / "ledger.db", log_format="json",
                        checkpoint_interval=0, signing_key=key_file)  # fmt: skip
    with TestClient(create_app(settings)):
        pass
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_the_app_makes_its_directories_and_files_owner_only(tmp_path: Path) -> None:
    """Even under umask 0: the data directory and the key's new directory 0700, the database,
    its -wal/-shm, the writer-lock file and the signing key 0600."""
    key = tmp_path / "keys" / "log.key"
    settings = Settings(db=tmp_path / "data" / "ledger.db", checkpoint_interval=0, signing_key=key)
    previous = os.umask(0)
    try:
        with TestClient(create_app(settings)):
            files = [Path(f"{settings.db}{end}") for end in ("", "-wal", "-shm", "-writer-lock")]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    finally:
        os.umask(previous)
    assert modes == dict.fromkeys(modes, 0o600)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.signing_key_path.stat().st_mode) == 0o600


def test_checkpoints_are_signed_in_the_background_and_shutdown_is_prompt(
    tmp_path: Path, keys_for: Any
) -> None:
    settings = Settings(db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=0.2)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    with client:
        keys = keys_for(settings)
        positions = seed(client, keys, 3)
        op = bearer(keys["operator"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listed = client.get("/v1/log/checkpoints", headers=op).json()
            if listed and listed[-1]["size"] == positions["other"][-1]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no background checkpoint covered the newest entry")
        sizes = [c["size"] for c in listed]
        assert sizes == sorted(set(sizes))
    slow = Settings(db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=3600)
    with TestClient(create_app(slow)):
        started = time.monotonic()
    assert time.monotonic() - started < 5  # the sleeping checkpointer was cancelled at once


def test_an_unusable_key_never_stops_the_service(tmp_path: Path, keys_for: Any) -> None:
    settings = Settings(db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=0.05)
    settings.signing_key_path.write_bytes(b"not a key")
    settings.signing_key_path.chmod(0o644)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        keys = keys_for(settings)
        seed(client, keys, 2)  # intake goes on
        time.sleep(0.3)  # several failing ticks
        r = client.get("/v1/log/checkpoint", headers=bearer(keys["check"]))
        is_problem(r, 503)
        assert client.get("/readyz").status_code in (200, 204)


def test_a_failing_tick_is_logged_and_the_next_one_runs(tmp_path: Path) -> None:
    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        services = Services(settings=Settings(db=tmp_path / "ledger.db"), ledger=ledger)
        checkpointer = Checkpointer(services, 60)
        ledger.configure_subaccount("default", "ACME_MKT", actor="test")
        original, calls = ledger.sign_checkpoint, []

        def flaky(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("disk on fire")
            return original(*args, **kwargs)

        ledger.sign_checkpoint = flaky  # type: ignore[method-assign]
        with capture_logs() as logged:
            anyio.run(checkpointer.tick_once)
        assert checkpointer.failures == 1
        (line,) = logged
        assert line["log_level"] == "error"
        assert "disk on fire" in line["error"]
        anyio.run(checkpointer.tick_once)
        assert checkpointer.signed == 1
        assert ledger.latest_checkpoint() is not None
    finally:
        ledger.close()


def test_two_workers_sign_once_per_interval(tmp_path: Path) -> None:
    """Two worker processes' checkpointers (two ledgers on one file), ticking on a shared fake
    clock four times per interval while the log grows: one checkpoint per interval."""
    now = [datetime(2026, 6, 1, 12, 0, tzinfo=UTC)]

    def clock() -> datetime:
        return now[0]

    ledgers = [ConsentLedger(tmp_path / "ledger.db", clock=clock) for _ in range(2)]
    try:
        settings = Settings(db=tmp_path / "ledger.db")
        workers = [Checkpointer(Services(settings=settings, ledger=x), 60) for x in ledgers]
        for tick in range(40):  # 10 intervals
            ledgers[tick % 2].configure_subaccount("default", f"S{tick}", actor="test")
            now[0] += timedelta(seconds=15)
            for worker in workers:
                worker.sign_if_due()
        records = (
            ledgers[0]
            .store.reader()
            .execute("SELECT size, signed_at FROM checkpoints ORDER BY size")
            .fetchall()
        )
        assert len(records) == 10  # 40 ticks of 15 s: one checkpoint per 60 s
        signed_at = [parse_time(t) for _, t in records]
        assert all(b - a >= timedelta(seconds=60) for a, b in itertools.pairwise(signed_at))
        assert sum(w.signed for w in workers) == len(records)
    finally:
        for x in ledgers:
            x.close()


@pytest.fixture
def keys_for() -> Any:
    """Create the usual keys for an app started with other settings."""
    from api.keys import create_key
    from ledger.sqlite.connection import connect

    def make(settings: Settings) -> dict[str, str]:
        conn = connect(settings.db)
        try:
            return {
                "ingest": create_key(SqliteKeys(conn), tenant="default", scopes=["ingest"]),
                "check": create_key(SqliteKeys(conn), tenant="default", scopes=["check"]),
                "other": create_key(SqliteKeys(conn), tenant="other", scopes=["ingest"]),
                "operator": create_key(SqliteKeys(conn), tenant=None, scopes=["audit"]),
            }
        finally:
            conn.close()

    return make
