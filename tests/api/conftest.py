"""HTTP test fixtures: an app on a fresh database, and keys for every role."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.keys import create_key, revoke_key
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys

FIXTURES_8X8 = Path(__file__).parent.parent / "fixtures" / "8x8"
MSISDN = "+6581968289"
ENCODED = "%2B6581968289"  # MSISDN as a URL path segment
STOP_AT = "2026-03-02T09:15:27.431Z"
START_AT = "2026-04-11T18:02:05.000Z"

Client = TestClient  # type: ignore[type-arg]
ALL = ["ingest", "check", "audit", "admin"]


def fixture_body(name: str) -> bytes:
    """The bytes of one 8x8 sample body."""
    return (FIXTURES_8X8 / name).read_bytes()


def fixture_json(name: str) -> dict[str, object]:
    """One 8x8 sample body, parsed."""
    return json.loads(fixture_body(name))


def bearer(key: str) -> dict[str, str]:
    """Headers authenticating with ``key`` as a bearer token."""
    return {"Authorization": f"Bearer {key}"}


def basic(key: str, user: str = "8x8") -> dict[str, str]:
    """Headers authenticating with ``key`` as the Basic password (as 8x8 webhooks do)."""
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "ledger.db", log_format="json", checkpoint_interval=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def keys(client: TestClient, settings: Settings) -> dict[str, str]:  # type: ignore[type-arg]
    """Keys: ``all`` (every scope), one per scope, ``other`` (another tenant, every scope),
    ``operator``, ``revoked`` and ``none`` (a well-formed key that does not exist)."""
    conn = connect(settings.db)
    made = {"all": create_key(SqliteKeys(conn), tenant="default", scopes=ALL)}  # type: ignore[arg-type]
    for scope in ALL:
        made[scope] = create_key(SqliteKeys(conn), tenant="default", scopes=[scope])  # type: ignore[list-item]
    made["other"] = create_key(SqliteKeys(conn), tenant="other", scopes=ALL)  # type: ignore[arg-type]
    made["operator"] = create_key(SqliteKeys(conn), tenant=None, scopes=ALL)  # type: ignore[arg-type]
    made["revoked"] = create_key(SqliteKeys(conn), tenant="default", scopes=ALL)  # type: ignore[arg-type]
    revoke_key(SqliteKeys(conn), made["revoked"].split("_")[1])
    made["none"] = "cl_000000000000_" + "x" * 43
    conn.close()
    return made


def head(client: Client) -> int:
    """The log position the app's ledger is at."""
    return int(client.app.state.services.ledger.head())


def webhook(client: Client, keys: dict[str, str], body: bytes | dict[str, Any]) -> dict[str, Any]:
    """POST one body to the 8x8 webhook with the ingest key; asserts the 200."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(
        "/v1/webhooks/8x8",
        content=raw,
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def sms(text: str, umid: str, *, subaccount: str = "ACME_MKT", timestamp: str = STOP_AT) -> bytes:
    """The inbound-SMS fixture with another text, umid, subaccount and time."""
    body = fixture_json("inbound-sms-stop.json")
    payload: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    payload.update(umid=umid, body=text, subAccountId=subaccount, timestamp=timestamp)
    return json.dumps(body).encode()
