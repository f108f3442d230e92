"""Every error, even an unexpected one, is an RFC 9457 problem that leaks no internals."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from litestar import get
from litestar.testing import TestClient

from api import app as app_module
from api.settings import Settings

from .conftest import bearer


@get("/boom", exclude_from_auth=True, sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret internal detail +6581968289")


def test_unexpected_exception_is_a_500_problem_without_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = types.SimpleNamespace(ROUTES=[boom])
    monkeypatch.setattr(app_module, "ROUTE_MODULES", [*app_module.ROUTE_MODULES, extra])
    settings = Settings(db=tmp_path / "l.db", log_format="json", checkpoint_interval=0)
    with TestClient(app_module.create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 500
    assert body["type"].endswith("/internal")
    assert "secret" not in response.text
    assert "6581968289" not in response.text


def test_input_the_client_must_fix_is_not_logged_as_an_unexpected_error(
    client: TestClient,  # type: ignore[type-arg]
    keys: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = b'{"msisdn": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    capsys.readouterr()  # what the app's start-up wrote
    response = client.post(
        "/v1/opt-ins",  # an opt-out keeps such a body in the quarantine instead
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["ingest"])},
    )
    assert response.status_code == 400
    logged = capsys.readouterr().err
    assert "unexpected error" not in logged
    assert "Traceback" not in logged
