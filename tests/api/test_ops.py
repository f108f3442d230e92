"""Readiness, metrics and the API docs page: what an operator and a load balancer rely on."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.keys import create_key
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys
from projections.sqlite.read_model import SqliteView

from .conftest import bearer

Client = TestClient  # type: ignore[type-arg]


def writer(client: Client) -> sqlite3.Connection:
    """The app's writer connection."""
    return client.app.state.services.ledger.store._wconn  # type: ignore[no-any-return]


def not_ready(client: Client, *causes: str) -> None:
    """``/readyz`` is a 503 problem with a generic detail and a request id, and ``causes``
    (driver text, migration names) are nowhere in the answer."""
    r = client.get("/readyz")
    assert r.status_code == 503, r.text
    problem = r.json()
    assert problem["type"].endswith("/not-ready")
    assert problem["detail"].startswith("the service is not ready")
    assert problem["request_id"] == r.headers["x-request-id"]
    assert int(r.headers["retry-after"]) > 0
    for cause in causes:
        assert cause not in r.text


def test_ready_when_the_database_can_be_written(client: Client) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "log_position": 0}


def test_a_read_only_database_is_not_ready_and_recovers(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    writer(client).execute("PRAGMA query_only = ON")
    capsys.readouterr()
    not_ready(client, "readonly", "read-only")
    assert "attempt to write a readonly database" in capsys.readouterr().err  # the log says why
    writer(client).execute("PRAGMA query_only = OFF")
    assert client.get("/readyz").status_code == 200


def test_a_database_another_writer_holds_is_not_ready(client: Client, settings: Settings) -> None:
    other = sqlite3.connect(settings.db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        not_ready(client, "locked")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert client.get("/readyz").status_code == 200
    assert writer(client).execute("PRAGMA busy_timeout").fetchone()[0] == 30_000  # restored


def test_pending_migrations_are_not_ready_and_not_named(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "0999_secret_schema_change.sql"
    monkeypatch.setattr(SqliteView, "pending_migrations", lambda _view: [name])
    capsys.readouterr()
    not_ready(client, name, "0999")
    assert name in capsys.readouterr().err


def test_a_503_names_neither_the_key_path_nor_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        db=tmp_path / "ledger.db",
        signing_key=tmp_path / "secret-dir" / "signing.key",
        log_format="json",
        checkpoint_interval=0,
    )
    settings.signing_key_path.parent.mkdir()
    settings.signing_key_path.write_bytes(b"not a key")
    settings.signing_key_path.chmod(0o600)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        conn = connect(settings.db)
        key = create_key(SqliteKeys(conn), tenant="default", scopes=["check"])
        conn.close()
        capsys.readouterr()
        r = client.get("/v1/log/checkpoint", headers=bearer(key))
    assert r.status_code == 503
    problem = r.json()
    assert problem["type"].endswith("/signing-key-unavailable")
    assert str(tmp_path) not in r.text
    assert "secret-dir" not in r.text
    assert problem["request_id"] == r.headers["x-request-id"]
    logged = capsys.readouterr().err
    assert "secret-dir" in logged  # the operator learns where and why, from the log
    assert problem["request_id"] in logged


def test_a_store_outage_answers_no_driver_text(
    client: Client,
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ledger.errors import StoreUnavailable

    def broken(*_: object) -> None:
        raise StoreUnavailable("cannot start a write: disk I/O error in /srv/ledger/ledger.db")

    monkeypatch.setattr(client.app.state.services.ledger, "append", broken)
    capsys.readouterr()
    r = client.post(
        "/v1/opt-outs",
        json={"msisdn": "+6581968289", "subaccount": "ACME_MKT"},
        headers=bearer(keys["ingest"]),
    )
    assert r.status_code == 503
    assert r.json()["type"].endswith("/store-unavailable")
    assert "I/O" not in r.text
    assert "/srv/ledger" not in r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
    logged = capsys.readouterr().err
    assert "disk I/O error" in logged
    assert r.json()["request_id"] in logged


# -- metrics ----------------------------------------------------------------------------------
def test_metrics_are_public_by_default(client: Client) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "consent_ledger_log_size" in r.text


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[tuple[Client, dict[str, str]]]:
    settings = Settings(
        db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=0, metrics="key"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        conn = connect(settings.db)
        made = {
            "metrics": create_key(SqliteKeys(conn), tenant="monitoring", scopes=["metrics"]),
            "check": create_key(SqliteKeys(conn), tenant="default", scopes=["check"]),
            "operator": create_key(SqliteKeys(conn), tenant=None, scopes=["admin"]),
        }
        conn.close()
        yield client, made


def test_protected_metrics_need_the_metrics_scope_or_an_operator_key(
    protected: tuple[Client, dict[str, str]],
) -> None:
    client, keys = protected
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(keys["check"])).status_code == 403
    for who in ("metrics", "operator"):
        r = client.get("/metrics", headers=bearer(keys[who]))
        assert r.status_code == 200, who
        assert "consent_ledger_log_size" in r.text
    assert client.get("/healthz").status_code == 200  # the probes stay public
    assert client.get("/readyz").status_code == 200


def test_the_metrics_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    env = {"CONSENT_LEDGER_DB": str(tmp_path / "l.db"), "CONSENT_LEDGER_METRICS": "key"}
    assert Settings.from_env(env).metrics == "key"
    with pytest.raises(msgspec.ValidationError):
        Settings.from_env({**env, "CONSENT_LEDGER_METRICS": "open"})


# -- the API docs page ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_docs_page_loads_nothing_from_another_host(client: Client, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    head = page.text.split("<body", 1)[0]
    referenced = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
    assert referenced, "the page references its script and styles"
    for url in referenced:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url  # served by this app, from the installed package
        assert len(asset.content) > 0
    assert "cdn" not in head.lower()
    assert "://" not in head
