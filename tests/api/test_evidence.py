"""Evidence bundles over HTTP and the command line, checked with the offline verifier (issue 4)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.cli import main
from api.routes.evidence import EXAMPLE_BUNDLE
from api.settings import Settings
from api.signing import signer_for
from projections.bundle_verify import verify_bundle
from projections.evidence import FORMAT, STATEMENT
from projections.ledger import ConsentLedger

from .conftest import bearer, fixture_body, fixture_json

MSISDN = "+6581968289"
ENCODED = "%2B6581968289"

Client = TestClient  # type: ignore[type-arg]


def head(client: Client) -> int:
    return int(client.app.state.services.ledger.head())


def webhook(client: Client, keys: dict[str, str], body: bytes) -> dict[str, Any]:
    r = client.post(
        "/v1/webhooks/8x8",
        content=body,
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def sms(text: str, umid: str, *, subaccount: str = "ACME_MKT") -> bytes:
    body = fixture_json("inbound-sms-stop.json")
    payload: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    payload.update(umid=umid, body=text, subAccountId=subaccount)
    return json.dumps(body).encode()


def bundle_of(
    client: Client, keys: dict[str, str], key: str = "audit", msisdn: str = ENCODED, **query: str
) -> Any:
    return client.get(f"/v1/evidence/ACME_MKT/{msisdn}", params=query, headers=bearer(keys[key]))


def verifier_key(settings: Settings) -> str:
    """What ``consent-ledger signing-key show`` prints for this deployment."""
    return signer_for(settings).verifier_key


# -- HTTP ---------------------------------------------------------------------------------------


def test_http_bundle_verifies_offline(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = bundle_of(client, keys)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == FORMAT
    assert body["statement"] == STATEMENT
    assert body["msisdn"] == MSISDN
    # signed on demand: the checkpoint covers the newest entry
    assert body["checkpoint"]["size"] == head(client)
    assert r.headers["X-Checkpoint-Size"] == str(head(client))
    assert body["checkpoint"]["verifier_key"] == verifier_key(settings)
    stored = {e["position"]: e for e in body["entries"]}
    assert stored[stop["position"]]["evidence"]["decoded"]["raw_body"] == (
        fixture_body("inbound-sms-stop.json").decode()
    )
    assert body["decision"]["state"] == "opted_out"

    verified = verify_bundle(r.content, verifier_key(settings))
    assert verified.entries == len(body["entries"])
    assert verified.state == "opted_out"


def test_a_later_entry_gets_a_newer_checkpoint(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    first = bundle_of(client, keys).json()
    start = webhook(client, keys, fixture_body("inbound-sms-start.json"))
    second = bundle_of(client, keys).json()
    assert second["checkpoint"]["size"] == start["position"] > first["checkpoint"]["size"]
    assert second["decision"]["state"] == "opted_in"
    assert second["timeline"][-1]["position"] == start["position"]
    verify_bundle(json.dumps(second), verifier_key(settings))


def test_a_bundle_needing_no_new_checkpoint_does_not_wait_for_writers(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    """With the newest entry already covered by a checkpoint, a bundle is a pure read: it is
    answered while another process holds the write lock."""
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    first = bundle_of(client, keys)
    assert first.json()["checkpoint"]["size"] == head(client)
    writer = sqlite3.connect(settings.db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process's write transaction
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(bundle_of, client, keys)
        try:
            r = answer.result(timeout=20)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    assert r.status_code == 200, r.text
    assert r.json()["checkpoint"] == first.json()["checkpoint"]


def test_html_rendering(client: Client, keys: dict[str, str], settings: Settings) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    flagged = webhook(client, keys, sms("please stop <script>alert(1)</script> at 5", "u-html"))
    assert flagged["outcome"] == "review"
    r = bundle_of(client, keys, format="html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.startswith("<!DOCTYPE html>")
    assert "MAY NOT SEND" in page
    assert "they do not show that no other entry exists" in page
    assert "consent-ledger verify-bundle FILE --key KEY" in page
    assert verifier_key(settings) in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # evidence text, escaped
    assert "<script" not in page.lower()
    assert "http://" not in page
    assert "https://" not in page  # no external assets


def test_html_page_headers_forbid_scripts_and_sniffing(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = bundle_of(client, keys, format="html")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"  # charset named once
    assert r.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert r.headers["x-content-type-options"] == "nosniff"


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_html_shows_bidirectional_controls_instead_of_obeying_them(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    text = "please stop \u202e9828918656+ ot gnitxet\u202c " + BIDI
    flagged = webhook(client, keys, sms(text, "u-bidi"))
    assert flagged["outcome"] == "review"
    page = bundle_of(client, keys, format="html").text
    assert not any(c in page for c in BIDI)  # none is left for a browser to obey
    assert '<span class="ctl">&lt;U+202E&gt;</span>9828918656+' in page
    for c in BIDI:
        assert f"&lt;U+{ord(c):04X}&gt;" in page


def test_html_marks_retractions_and_erasures(client: Client, keys: dict[str, str]) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    start = webhook(client, keys, fixture_body("inbound-sms-start.json"))
    r = client.post(
        "/v1/retractions",
        json={"position": start["position"], "reason": "sent by a test harness"},
        headers=bearer(keys["admin"]),
    )
    assert r.status_code == 201, r.text
    client.app.state.services.ledger.store.erase_evidence(stop["position"], "erasure request")
    page = bundle_of(client, keys, format="html").text
    assert f"retracted by position {r.json()['position']}" in page
    assert f"retracts position {start['position']}: sent by a test harness" in page
    assert "was erased (salt and content)" in page
    assert "MAY NOT SEND" in page  # the START no longer counts


def test_erased_evidence_still_verifies(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    client.app.state.services.ledger.store.erase_evidence(stop["position"], "erasure request")
    r = bundle_of(client, keys)
    entry = next(e for e in r.json()["entries"] if e["position"] == stop["position"])
    assert entry["evidence"]["status"] == "erased"
    assert entry["evidence"]["content"] is None
    assert "STOP" not in json.dumps(entry["evidence"])
    verified = verify_bundle(r.content, verifier_key(settings))
    assert verified.evidence_absent == 1
    assert verified.state == "opted_out"  # the suppression record itself stays


def test_another_tenants_number_gives_no_entries(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = bundle_of(client, keys, key="other")
    assert r.status_code == 200
    body = r.json()
    assert body["tenant"] == "other"
    assert body["entries"] == []
    assert body["timeline"] == []
    assert body["decision"]["state"] == "unknown"
    assert body["decision"]["decided_by"] is None
    ours = client.app.state.services.ledger.store.read_positions([stop["position"]])[0]
    assert ours.entry.event_id not in r.text
    assert "8x8:" not in r.text
    assert "inbound_message_received" not in r.text
    verify_bundle(r.content, verifier_key(settings))
    html = bundle_of(client, keys, key="other", format="html").text
    assert ours.entry.event_id not in html


@pytest.mark.parametrize("key", ["check", "ingest", "admin", "operator", "revoked", "none"])
def test_needs_an_audit_key_and_writes_nothing(
    client: Client, keys: dict[str, str], key: str
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    before = head(client)
    r = bundle_of(client, keys, key=key)
    assert r.status_code in (401, 403)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert head(client) == before


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/evidence/ACME_MKT/not-a-number", 422),
        ("/v1/evidence/bad%20sub/%2B6581968289", 422),
        ("/v1/evidence/ACME_MKT/%2B6581968289?format=pdf", 400),
    ],
)
def test_bad_requests_are_problems(
    client: Client, keys: dict[str, str], path: str, status: int
) -> None:
    before = head(client)
    r = client.get(path, headers=bearer(keys["audit"]))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert head(client) == before


def test_openapi_documents_the_route_with_a_verifiable_example(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()
    op = schema["paths"]["/v1/evidence/{subaccount}/{msisdn}"]["get"]
    assert op["summary"]
    assert op["tags"] == ["evidence"]
    examples = op["responses"]["200"]["content"]["application/json"]["examples"]
    assert len(examples) == 1
    example = next(iter(examples.values()))["value"]
    assert example == EXAMPLE_BUNDLE
    verify_bundle(json.dumps(example), example["checkpoint"]["verifier_key"])


# -- CLI ----------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_evidence_and_verify_bundle(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    db = str(settings.db)
    code, _, err = run(capsys, "record", "--db", db, "--subaccount", "ACME_MKT",
                       "--msisdn", MSISDN, "--action", "opt_out", "--text", "STOP")  # fmt: skip
    assert code == 0, err
    out_file, html_file = tmp_path / "bundle.json", tmp_path / "bundle.html"
    code, out, err = run(capsys, "evidence", MSISDN, "--subaccount", "ACME_MKT", "--db", db,
                         "-o", str(out_file), "--html", str(html_file))  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["entries"] == 1
    assert summary["state"] == "opted_out"
    key = summary["verifier_key"]
    code, shown, _ = run(capsys, "signing-key", "show", "--db", db)
    assert shown.strip() == key  # the key the operator publishes
    assert "MAY NOT SEND" in html_file.read_text()

    code, out, err = run(capsys, "verify-bundle", str(out_file), "--key", key)
    assert code == 0, err
    assert out.count("\n") == 1
    assert out.startswith("OK: 1 entries bearing on +6581968289 for ACME_MKT")
    assert "not that no other entry exists" in out

    document = json.loads(out_file.read_text())
    document["entries"][0]["entry"]["occurred_at"] = "2020-01-01T00:00:00.000Z"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    code, out, err = run(capsys, "verify-bundle", str(tampered), "--key", key)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "FAILED" in err
    assert "position 1" in err

    code, _, err = run(capsys, "verify-bundle", str(out_file), "--key", "other+00000000+AQ==")
    assert code == 1
    assert "FAILED" in err
    code, _, err = run(capsys, "verify-bundle", str(tmp_path / "missing.json"), "--key", key)
    assert code == 2
    assert "cannot read" in err


def test_cli_bundle_to_stdout_for_a_tenant(
    capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    db = str(settings.db)
    run(capsys, "record", "--db", db, "--tenant", "acme", "--subaccount", "S1",
        "--msisdn", MSISDN, "--action", "opt_out")  # fmt: skip
    code, out, err = run(capsys, "evidence", MSISDN, "--subaccount", "S1", "--db", db,
                         "--tenant", "default", "-o", "-")  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert document["entries"] == []  # another tenant's entries never appear
    verify_bundle(out, document["checkpoint"]["verifier_key"])


def record_stop(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, _, err = run(capsys, "record", "--db", db, "--subaccount", "ACME_MKT",
                       "--msisdn", MSISDN, "--action", "opt_out", "--text", "STOP")  # fmt: skip
    assert code == 0, err


def test_cli_bundles_are_owner_only_and_never_written_through_a_symlink(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    db = str(settings.db)
    record_stop(capsys, db)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not to be overwritten")
    (out_dir / "bundle.json").symlink_to(victim)  # planted where the bundle goes
    previous = os.umask(0)
    try:
        code, _, err = run(capsys, "evidence", MSISDN, "--subaccount", "ACME_MKT", "--db", db,
                           "-o", str(out_dir / "bundle.json"),
                           "--html", str(out_dir / "bundle.html"))  # fmt: skip
    finally:
        os.umask(previous)
    assert code == 0, err
    assert victim.read_text() == "not to be overwritten"
    assert sorted(p.name for p in out_dir.iterdir()) == ["bundle.html", "bundle.json"]
    for name in ("bundle.json", "bundle.html"):
        info = (out_dir / name).lstat()
        assert stat.S_ISREG(info.st_mode), name
        assert stat.S_IMODE(info.st_mode) == 0o600, name
    assert json.loads((out_dir / "bundle.json").read_text())["format"] == FORMAT


def test_cli_bundle_that_cannot_be_written_signs_nothing(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    db = str(settings.db)
    record_stop(capsys, db)
    code, out, err = run(capsys, "evidence", MSISDN, "--subaccount", "ACME_MKT", "--db", db,
                         "-o", str(tmp_path / "bundle.json"),
                         "--html", str(tmp_path / "missing" / "bundle.html"))  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "cannot write" in err
    assert "missing/bundle.html" in err
    assert sorted(p.name for p in tmp_path.iterdir() if "bundle" in p.name) == []
    ledger = ConsentLedger(settings.db)
    try:
        assert ledger.latest_checkpoint() is None  # nothing was signed
    finally:
        ledger.close()


INSTALLED = shutil.which("consent-ledger", path=str(Path(sys.executable).parent))


@pytest.mark.slow
@pytest.mark.skipif(INSTALLED is None, reason="the consent-ledger command is not installed")
def test_installed_command_verifies_an_http_bundle(
    client: Client, keys: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_of(client, keys).content)
    done = subprocess.run(
        [str(INSTALLED), "verify-bundle", str(path), "--key", verifier_key(settings)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")
