"""``POST /v1/imports``: the CLI's import over HTTP (docs/adopting.md)."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import MSISDN, Client, bearer, head

CSV = (
    "msisdn,subaccount,occurred_at,source\n"
    f"{MSISDN},ACME_MKT,2024-01-01,old platform\n"
    "n/a,ACME_MKT,2024-01-01,\n"
)


def register(client: Client, keys: dict[str, str]) -> None:
    r = client.put(
        "/v1/subaccounts/ACME_MKT", json={"default_region": "SG"}, headers=bearer(keys["admin"])
    )
    assert r.status_code in (200, 201), r.text


def test_import_answers_the_summary_and_rejected_rows(client: Client, keys: dict[str, str]) -> None:
    register(client, keys)
    r = client.post("/v1/imports?name=old.csv", content=CSV.encode(), headers=bearer(keys["admin"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["file"], body["format"], body["recorded"], body["rejected"]) == (
        "old.csv",
        "csv",
        1,
        1,
    )
    assert body["rejected_rows"][0]["row"] == 3
    assert body["rejected_rows"][0]["column"] == "msisdn"
    again = client.post(
        "/v1/imports?name=again.csv", content=CSV.encode(), headers=bearer(keys["admin"])
    ).json()
    assert (again["recorded"], again["duplicates"]) == (0, 1)
    decision = client.get(f"/v1/consent/ACME_MKT/%2B{MSISDN[1:]}", headers=bearer(keys["check"]))
    assert decision.json()["state"] == "opted_out"


def test_json_lines_mapping_and_options(client: Client, keys: dict[str, str]) -> None:
    register(client, keys)
    body = b'{"Phone": "81968289", "Date": "2024-01-01 08:00"}\n'
    r = client.post(
        "/v1/imports?subaccount=ACME_MKT&map=Phone=msisdn&map=Date=occurred_at"
        "&timezone=Asia/Singapore",
        content=body,
        headers={**bearer(keys["admin"]), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["format"], r.json()["recorded"]) == ("jsonl", 1)


def test_strict_refuses_and_scope_is_admin(client: Client, keys: dict[str, str]) -> None:
    register(client, keys)
    before = head(client)
    r = client.post("/v1/imports?strict=true", content=CSV.encode(), headers=bearer(keys["admin"]))
    assert r.status_code == 422, r.text
    assert "row 3" in r.json()["detail"]
    assert head(client) == before
    r = client.post("/v1/imports", content=CSV.encode(), headers=bearer(keys["ingest"]))
    assert r.status_code == 403


def test_too_large_is_refused(tmp_path: Path, keys: dict[str, str], settings: Settings) -> None:
    small = Settings(db=settings.db, log_format="json", checkpoint_interval=0, max_import_bytes=64)
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        before = head(client)
        r = client.post("/v1/imports", content=CSV.encode() * 3, headers=bearer(keys["admin"]))
        assert r.status_code == 413, r.text
        assert head(client) == before


def test_suppression_list_streamed(client: Client, keys: dict[str, str]) -> None:
    register(client, keys)
    client.post("/v1/imports", content=CSV.encode(), headers=bearer(keys["admin"]))
    r = client.get("/v1/suppression/ACME_MKT", headers=bearer(keys["audit"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "msisdn,scope,position,keyword,method,occurred_at"
    assert lines[1].startswith(f"{MSISDN},subaccount,")
    assert lines[1].endswith(",import,2024-01-01T00:00:00.000Z")
    r = client.get(
        "/v1/suppression/ACME_MKT?format=jsonl&at=2023-12-31", headers=bearer(keys["audit"])
    )
    assert r.text == ""
    r = client.get("/v1/suppression/*?format=jsonl", headers=bearer(keys["audit"]))
    assert r.text == ""  # a subaccount's opt-out never blocks every subaccount
    assert client.get("/v1/suppression/ACME_MKT", headers=bearer(keys["ingest"])).status_code == 403


def test_held_opt_in_is_accepted_over_http(client: Client, keys: dict[str, str]) -> None:
    register(client, keys)
    stop = client.post(
        "/v1/opt-outs",
        json={
            "subaccount": "ACME_MKT",
            "msisdn": MSISDN,
            "text": "STOP",
            "occurred_at": "2025-02-01T00:00:00Z",
        },
        headers=bearer(keys["ingest"]),
    )
    assert stop.status_code in (200, 201), stop.text
    body = f"msisdn,subaccount,action,occurred_at\n{MSISDN},ACME_MKT,opt_in,2025-03-01\n"
    done = client.post("/v1/imports", content=body.encode(), headers=bearer(keys["admin"]))
    assert done.json()["queued_for_review"] == 1
    items = client.get("/v1/review", headers=bearer(keys["audit"])).json()["items"]
    held = next(i for i in items if i["method"] == "import")
    assert held["actions"][0] == "accept"
    r = client.post(
        f"/v1/review/{held['position']}/resolve",
        json={"action": "accept", "note": "double opt-in confirmed"},
        headers=bearer(keys["admin"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["opt_in_position"] is not None
    decision = client.get(f"/v1/consent/ACME_MKT/%2B{MSISDN[1:]}", headers=bearer(keys["check"]))
    assert decision.json()["state"] == "opted_in"
