"""Erasing evidence (docs/adopting.md): the number stays suppressed, verify, proofs, old
checkpoints and bundles stay valid, and the erased text is found nowhere in the database files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.cli import main
from api.keys import create_key
from api.settings import Settings
from api.signing import signer_for
from ledger import merkle
from ledger.checkpoint import open_note
from projections.bundle_verify import verify_bundle
from tests.api.conftest import ALL, ENCODED, MSISDN, Client, bearer, fixture_json
from tests.pg_util import data_files, file_bytes, scrub_when_free

MARKER = "Zephyrine-Quillfeather-7731"
"""A text that appears in the evidence (and a quarantined body) only."""


def stop_with_marker(umid: str) -> bytes:
    body = fixture_json("inbound-sms-stop.json")
    body["payload"]["profileName"] = MARKER  # type: ignore[index]
    body["payload"]["umid"] = umid  # type: ignore[index]
    return json.dumps(body).encode()


def post_webhook(client: Client, keys: dict[str, str], body: bytes) -> dict[str, object]:
    r = client.post(
        "/v1/webhooks/8x8",
        content=body,
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def db_files(location: str | Path) -> bytes:
    db = Path(location)
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


def checkpoint(client: Client, keys: dict[str, str]) -> dict[str, object]:
    r = client.post("/v1/log/checkpoints", headers=bearer(keys["operator"]))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def test_erase_a_number(
    client: Client, keys: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(40):  # enough evidence that pages split and overflow
        post_webhook(client, keys, stop_with_marker(f"umid-{n}"))
    stop = post_webhook(client, keys, stop_with_marker("umid-last"))
    quarantined = post_webhook(
        client, keys, f'{{"payload": {{"source": "{MSISDN}", "note": "{MARKER}"'.encode()
    )
    assert quarantined["outcome"] == "quarantined"
    old = checkpoint(client, keys)
    assert MARKER.encode() in db_files(settings.db)

    r = client.post(
        "/v1/erasures",
        json={"msisdn": MSISDN, "reason": "DSR-2026-0142"},
        headers=bearer(keys["admin"]),
    )
    assert r.status_code == 201, r.text
    done = r.json()
    assert stop["position"] in done["positions"]
    assert (done["quarantined"], done["scrubbed"]) == (1, True)
    assert MARKER.encode() not in db_files(settings.db)

    # consent unchanged
    decision = client.get(f"/v1/consent/ACME_MKT/{ENCODED}", headers=bearer(keys["check"]))
    assert decision.json()["state"] == "opted_out"
    # the audit trail says when and why, in place of the text
    trail = client.get(f"/v1/audit/ACME_MKT/{ENCODED}", headers=bearer(keys["audit"])).json()
    erased = next(e for e in trail["entries"] if e["position"] == stop["position"])
    assert erased["evidence_erased"] is True
    assert erased["evidence_erased_note"].endswith(": DSR-2026-0142")
    assert erased["evidence_erased_note"].startswith("evidence erased on ")
    assert trail["entries"][-1]["type"] == "evidence.erased"
    # the old checkpoint is consistent with the new one; the bundle verifies offline
    new = checkpoint(client, keys)
    proof = client.get(
        "/v1/log/proof/consistency",
        params={"first": old["size"], "second": new["size"]},
        headers=bearer(keys["audit"]),
    ).json()
    key = signer_for(settings).verifier_key
    first, second = open_note(str(old["note"]), key), open_note(str(new["note"]), key)
    assert merkle.verify_consistency(
        first.size,
        second.size,
        first.root,
        second.root,
        [base64.b64decode(h) for h in proof["proof"]],
    )
    bundle = client.get(f"/v1/evidence/ACME_MKT/{ENCODED}", headers=bearer(keys["audit"]))
    verified = verify_bundle(bundle.content, key)
    assert verified.state == "opted_out"
    notes = [
        e["evidence"]["note"] for e in bundle.json()["entries"] if e["position"] == stop["position"]
    ]
    assert notes[0].startswith("evidence erased on ")
    # the whole log verifies
    capsys.readouterr()
    assert main(["verify", "--db", str(settings.db)]) == 0
    # nothing left to erase
    again = client.post(
        "/v1/erasures", json={"msisdn": MSISDN, "reason": "x"}, headers=bearer(keys["admin"])
    )
    assert again.status_code == 404


def test_erase_one_position_from_the_cli(
    client: Client, keys: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = post_webhook(client, keys, stop_with_marker("umid-cli"))
    capsys.readouterr()
    args = ["erase", "--position", str(stop["position"]), "--reason", "TICKET-9"]
    assert main([*args, "--db", str(settings.db)]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["positions"] == [stop["position"]]
    assert MARKER.encode() not in db_files(settings.db)
    assert main([*args, "--db", str(settings.db)]) == 1  # already erased
    assert "no evidence to erase" in capsys.readouterr().err


def test_erasure_needs_a_reason_and_admin(client: Client, keys: dict[str, str]) -> None:
    post_webhook(client, keys, stop_with_marker("umid-x"))
    r = client.post(
        "/v1/erasures", json={"msisdn": MSISDN, "reason": " "}, headers=bearer(keys["admin"])
    )
    assert r.status_code == 422
    r = client.post(
        "/v1/erasures", json={"msisdn": MSISDN, "reason": "T-1"}, headers=bearer(keys["audit"])
    )
    assert r.status_code == 403
    r = client.post(
        "/v1/erasures", json={"position": 2, "reason": "T-1"}, headers=bearer(keys["other"])
    )
    assert r.status_code == 404


def test_erase_a_number_on_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(db=pg_url, log_format="json", checkpoint_interval=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        table = client.app.state.services.ledger.store.keys()
        keys = {s: create_key(table, tenant="default", scopes=[s]) for s in ALL}  # type: ignore[list-item]
        for n in range(10):
            post_webhook(client, keys, stop_with_marker(f"umid-{n}"))
        stop = post_webhook(client, keys, stop_with_marker("umid-last"))
        body = f'{{"payload": {{"source": "{MSISDN}", "note": "{MARKER}"'
        assert post_webhook(client, keys, body.encode())["outcome"] == "quarantined"
        before = data_files(pg_url)
        assert MARKER.encode() in file_bytes(before)

        r = client.post(
            "/v1/erasures",
            json={"msisdn": MSISDN, "reason": "DSR-2026-0142"},
            headers=bearer(keys["admin"]),
        )
        assert r.status_code == 201, r.text
        assert stop["position"] in r.json()["positions"]
        if not r.json()["scrubbed"]:  # another session of the shared server held a snapshot
            scrub_when_free(client.app.state.services.ledger.store)
        assert MARKER.encode() not in file_bytes(before + data_files(pg_url))
        decision = client.get(f"/v1/consent/ACME_MKT/{ENCODED}", headers=bearer(keys["check"]))
        assert decision.json()["state"] == "opted_out"
        trail = client.get(f"/v1/audit/ACME_MKT/{ENCODED}", headers=bearer(keys["audit"])).json()
        erased = next(e for e in trail["entries"] if e["position"] == stop["position"])
        assert erased["evidence_erased_note"].endswith(": DSR-2026-0142")
    capsys.readouterr()
    assert main(["verify", "--db", pg_url]) == 0
