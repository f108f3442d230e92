"""``consent-ledger keys``: create, list and revoke API keys; the keys work against the app."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from litestar import Request, get
from litestar.testing import TestClient

import api.app
from api.app import create_app
from api.cli import main
from api.settings import Settings

from .conftest import basic, bearer

KEY = re.compile(r"cl_([a-z0-9]{12})_([A-Za-z0-9_-]{20,128})")


@get("/v1/test/whoami", opt={"any_key": True}, sync_to_thread=False)
def whoami(request: Request) -> dict[str, object]:  # type: ignore[type-arg]
    """Who the presented key is (a probe route for these tests only)."""
    return {"tenant": request.user.tenant, "scopes": sorted(request.user.scopes)}


@get("/v1/test/admin-only", opt={"scope": "admin"}, sync_to_thread=False)
def admin_only() -> dict[str, str]:
    """A route needing the admin scope (a probe route for these tests only)."""
    return {"ok": "yes"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def app_client(db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:  # type: ignore[type-arg]
    probes = SimpleNamespace(ROUTES=[whoami, admin_only])
    monkeypatch.setattr(api.app, "ROUTE_MODULES", [*api.app.ROUTE_MODULES, probes])
    settings = Settings(db=db, log_format="json", checkpoint_interval=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI; (exit code, stdout, stderr) of this command only."""
    capsys.readouterr()  # drop what the app logged before
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def create(capsys: pytest.CaptureFixture[str], db: Path, *options: str) -> str:
    code, out, err = run(capsys, "keys", "create", "--db", str(db), *options)
    assert (code, err) == (0, "")
    return out


def listed(capsys: pytest.CaptureFixture[str], db: Path, *options: str) -> list[dict[str, object]]:
    code, out, _ = run(capsys, "keys", "list", "--db", str(db), *options)
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def test_create_prints_the_key_alone_and_it_authenticates(
    capsys: pytest.CaptureFixture[str],
    db: Path,
    app_client: TestClient,  # type: ignore[type-arg]
) -> None:
    out = create(capsys, db, "--tenant", "acme", "--scopes", "check,ingest", "--label", "send path")
    assert KEY.fullmatch(out.rstrip("\n"))
    assert out.count("\n") == 1
    key = out.strip()
    for headers in (bearer(key), basic(key)):
        answer = app_client.get("/v1/test/whoami", headers=headers)
        assert answer.status_code == 200
        assert answer.json() == {"tenant": "acme", "scopes": ["check", "ingest"]}
    assert app_client.get("/v1/test/admin-only", headers=bearer(key)).status_code == 403


def test_tenant_defaults_to_default(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    create(capsys, db, "--scopes", "audit")
    [info] = listed(capsys, db)
    assert (info["tenant"], info["scopes"]) == ("default", ["audit"])


def test_operator_key_is_deployment_wide(
    capsys: pytest.CaptureFixture[str],
    db: Path,
    app_client: TestClient,  # type: ignore[type-arg]
) -> None:
    key = create(capsys, db, "--operator").strip()
    answer = app_client.get("/v1/test/whoami", headers=bearer(key))
    assert answer.status_code == 200
    assert answer.json()["tenant"] is None
    [info] = listed(capsys, db)
    assert info["tenant"] is None


def test_revoked_key_gets_401_at_once(
    capsys: pytest.CaptureFixture[str],
    db: Path,
    app_client: TestClient,  # type: ignore[type-arg]
) -> None:
    key = create(capsys, db, "--tenant", "default", "--scopes", "ingest,check,audit,admin").strip()
    other = create(capsys, db, "--tenant", "default", "--scopes", "check").strip()
    assert app_client.get("/v1/test/whoami", headers=bearer(key)).status_code == 200
    key_id = KEY.fullmatch(key).group(1)  # type: ignore[union-attr]
    code, out, err = run(capsys, "keys", "revoke", "--db", str(db), key_id)
    assert (code, err) == (0, "")
    revoked = json.loads(out)
    assert revoked["id"] == key_id
    assert revoked["revoked_at"]
    for headers in (bearer(key), basic(key)):
        answer = app_client.get("/v1/test/whoami", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert app_client.get("/v1/test/whoami", headers=bearer(other)).status_code == 200
    by_id = {info["id"]: info for info in listed(capsys, db)}
    assert by_id[key_id]["revoked_at"] == revoked["revoked_at"]
    assert by_id[KEY.fullmatch(other).group(1)]["revoked_at"] is None  # type: ignore[union-attr]


def test_list_is_json_lines_without_secrets(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    made = [
        create(capsys, db, "--tenant", "acme", "--scopes", "check", "--label", "a").strip(),
        create(capsys, db, "--tenant", "other", "--scopes", "admin,audit").strip(),
        create(capsys, db, "--operator", "--label", "ops").strip(),
    ]
    code, out, _ = run(capsys, "keys", "list", "--db", str(db))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [KEY.fullmatch(k).group(1) for k in made]  # type: ignore[union-attr]
    assert set(rows[0]) == {"id", "tenant", "scopes", "label", "created_at", "revoked_at"}
    assert [(r["tenant"], r["label"]) for r in rows] == [
        ("acme", "a"),
        ("other", None),
        (None, "ops"),
    ]
    assert rows[1]["scopes"] == ["audit", "admin"]
    for key in made:
        secret = KEY.fullmatch(key).group(2)  # type: ignore[union-attr]
        assert secret not in out
    assert [r["tenant"] for r in listed(capsys, db, "--tenant", "other")] == ["other"]


def test_only_a_sha256_of_the_secret_is_stored(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    key = create(capsys, db, "--tenant", "acme", "--scopes", "check").strip()
    key_id, secret = KEY.fullmatch(key).groups()  # type: ignore[union-attr]
    conn = sqlite3.connect(db)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(api_keys)")]
    row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    conn.close()
    stored = dict(zip(columns, row, strict=True))
    assert stored["secret_sha256"] == hashlib.sha256(secret.encode()).digest()
    for value in stored.values():
        assert secret not in str(value)
        assert key not in str(value)
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    assert all(secret.encode() not in p.read_bytes() for p in files)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["create", "--tenant", "acme", "--scopes", "check,superuser"], "superuser"),
        (["create", "--tenant", "acme", "--scopes", ""], "scope"),
        (["create", "--tenant", "acme"], "--scopes"),
        (["create", "--tenant", "bad tenant!", "--scopes", "check"], "tenant"),
        (["create", "--operator", "--scopes", "check"], "--scopes"),
        (["revoke", "000000000000"], "000000000000"),
    ],
)
def test_errors_are_one_line_and_change_nothing(
    capsys: pytest.CaptureFixture[str], db: Path, argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, "keys", argv[0], "--db", str(db), *argv[1:])
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1
    assert needle in err
    assert listed(capsys, db) == []


def test_revoking_twice_is_an_error(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    key = create(capsys, db, "--tenant", "acme", "--scopes", "check").strip()
    key_id = KEY.fullmatch(key).group(1)  # type: ignore[union-attr]
    assert run(capsys, "keys", "revoke", "--db", str(db), key_id)[0] == 0
    code, out, err = run(capsys, "keys", "revoke", "--db", str(db), key_id)
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1


def test_tenant_and_operator_are_exclusive(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["keys", "create", "--db", str(db), "--tenant", "acme", "--operator"])
    assert stopped.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
