"""Audit trails (JSON and CSV) and the review queue over HTTP."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.routes.audit import CSV_COLUMNS, csv_safe
from ledger.entries import Entry

from .conftest import (
    ENCODED,
    MSISDN,
    START_AT,
    STOP_AT,
    Client,
    bearer,
    fixture_body,
    head,
    sms,
    webhook,
)


def trail(
    client: Client,
    keys: dict[str, str],
    subaccount: str = "ACME_MKT",
    msisdn: str = ENCODED,
    key: str = "audit",
    **query: str,
) -> Any:
    return client.get(f"/v1/audit/{subaccount}/{msisdn}", params=query, headers=bearer(keys[key]))


def stored_entry(client: Client, position: int) -> tuple[bytes, Entry]:
    stored = client.app.state.services.ledger.store.read_positions([position])[0]
    return stored.data, stored.entry


# -- trail -----------------------------------------------------------------------------------


def test_trail_after_stop_and_start(client: Client, keys: dict[str, str]) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    start = webhook(client, keys, fixture_body("inbound-sms-start.json"))
    r = trail(client, keys)
    assert r.status_code == 200
    body = r.json()
    assert body["msisdn"] == MSISDN
    assert body["log_position"] == head(client)
    entries = body["entries"]
    assert [e["position"] for e in entries] == [stop["position"], start["position"]]
    first, second = entries
    assert first["type"] == "consent.revoked"
    assert first["occurred_at"] == STOP_AT
    assert first["keyword"] == "STOP"
    assert first["match"] == "exact"
    assert first["method"] == "8x8-webhook"
    assert first["actor"] == "data-subject"
    assert first["scope"] == "subaccount"
    assert first["policy"].endswith("@1")  # the policy that classified it, with its version
    assert second["type"] == "consent.granted"
    assert second["keyword"] == "START"
    assert first["recorded_at"] <= second["recorded_at"]

    data, entry = stored_entry(client, stop["position"])
    assert base64.b64decode(first["leaf_hash"]) == hashlib.sha256(b"\x00" + data).digest()
    assert first["evidence_digest"] == entry.evidence_digest
    assert first["event_id"] == entry.event_id
    assert first["evidence"]["raw_body"] == fixture_body("inbound-sms-stop.json").decode()
    assert first["evidence"]["text"] == "STOP"
    assert first["evidence_erased"] is False
    assert first["evidence_matches"] is True

    assert body["timeline"] == [
        {
            "from": STOP_AT,
            "to": START_AT,
            "state": "opted_out",
            "position": stop["position"],
            "scope": "subaccount",
        },
        {
            "from": START_AT,
            "to": None,
            "state": "opted_in",
            "position": start["position"],
            "scope": "subaccount",
        },
    ]
    assert body["decision"]["state"] == "opted_in"
    assert body["decision"]["decided_by"]["position"] == start["position"]
    assert [c["type"] for c in body["configuration"]] == ["subaccount.configured"]
    assert "not that no entry is missing" in body["completeness"]


def test_erased_evidence_is_null_and_hashes_still_hold(
    client: Client, keys: dict[str, str]
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    before = trail(client, keys).json()["entries"][0]
    client.app.state.services.ledger.store.erase_evidence(stop["position"], "erasure request")
    after = trail(client, keys).json()["entries"][0]
    assert after["evidence"] is None
    assert after["evidence_erased"] is True
    assert after["evidence_matches"] is None
    assert after["leaf_hash"] == before["leaf_hash"]
    assert after["evidence_digest"] == before["evidence_digest"]
    assert after["keyword"] == "STOP"  # the suppression record itself stays
    assert trail(client, keys).json()["decision"]["state"] == "opted_out"


def test_trail_includes_tenant_wide_entries_and_leaves_out_other_subaccounts(
    client: Client, keys: dict[str, str]
) -> None:
    stop_all = webhook(client, keys, sms("STOP ALL", "u1", subaccount="ACME_CARE"))
    webhook(client, keys, sms("HELP", "u2", subaccount="ACME_CARE"))
    webhook(client, keys, sms("can you stop the delivery at 5?", "u3", subaccount="ACME_CARE"))
    own = webhook(client, keys, sms("HELP", "u4", subaccount="ACME_MKT"))
    entries = trail(client, keys, "ACME_MKT").json()["entries"]
    assert [(e["position"], e["type"]) for e in entries] == [
        (stop_all["position"], "consent.revoked"),
        (own["position"], "help.requested"),
    ]
    assert entries[0]["scope"] == "tenant"
    assert len(trail(client, keys, "ACME_CARE").json()["entries"]) == 3


def test_trail_includes_retractions_of_its_entries(client: Client, keys: dict[str, str]) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = client.post(
        "/v1/retractions",
        json={"position": stop["position"], "reason": "sent by the customer's QA team"},
        headers=bearer(keys["admin"]),
    )
    assert r.status_code == 201
    body = trail(client, keys).json()
    assert [(e["type"], e["target"]) for e in body["entries"]] == [
        ("consent.revoked", None),
        ("entry.retracted", stop["position"]),
    ]
    assert body["entries"][1]["detail"] == "sent by the customer's QA team"
    assert body["entries"][1]["actor"].startswith("key:")
    assert body["timeline"] == []
    assert body["decision"]["state"] == "unknown"


def test_unknown_number_is_an_answer_not_a_404(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = trail(client, keys, msisdn="%2B6591234567")
    assert r.status_code == 200
    body = r.json()
    assert body["entries"] == []
    assert body["timeline"] == []
    assert body["decision"]["state"] == "unknown"
    assert body["decision"]["decided_by"] is None
    csv_r = trail(client, keys, msisdn="%2B6591234567", format="csv")
    assert csv_r.status_code == 200
    assert csv_r.text.strip() == ",".join(CSV_COLUMNS)


def test_trail_reads_national_numbers_in_the_subaccount_region(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    assert trail(client, keys, msisdn="81968289").status_code == 422
    client.put(
        "/v1/subaccounts/ACME_MKT", json={"default_region": "SG"}, headers=bearer(keys["admin"])
    )
    body = trail(client, keys, msisdn="81968289").json()
    assert body["msisdn"] == MSISDN
    assert len(body["entries"]) == 1


def test_csv_has_one_row_per_entry_and_is_formula_safe(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = client.post(
        "/v1/opt-outs",
        json={
            "msisdn": MSISDN,
            "subaccount": "ACME_MKT",
            "text": '=HYPERLINK("x") STOP',
            "method": "api",
            "actor": "@crm",
        },
        headers=bearer(keys["ingest"]),
    )
    assert r.status_code == 201, r.text
    response = trail(client, keys, format="csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == len(trail(client, keys).json()["entries"]) == 2
    assert rows[0]["evidence_raw_body"] == fixture_body("inbound-sms-stop.json").decode()
    assert rows[0]["evidence_text"] == "STOP"
    assert rows[0]["msisdn"] == MSISDN  # a strict E.164 number cannot be a formula
    assert rows[1]["evidence_text"] == "'" + '=HYPERLINK("x") STOP'
    assert rows[1]["actor"] == "data-subject"  # set by the server …
    assert rows[1]["claimed_actor"] == "'@crm"  # … the client's word is a claim, guarded too
    assert rows[1]["recorded_by"].startswith("key:")
    assert rows[0]["evidence_erased"] == "false"
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")) or E164.fullmatch(cell)


E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@pytest.mark.parametrize(
    "cell", ["+6581968289", "+1234567", "+123456789012345", "+12025550123", "+447911123456"]
)
def test_csv_leaves_a_strict_e164_number_as_it_is(cell: str) -> None:
    assert csv_safe(cell) == cell


@pytest.mark.parametrize(
    "cell",
    [
        "+123456",  # too short
        "+1234567890123456",  # too long
        "+0123456789",  # no country code starts with 0
        "+6581968289\n",
        "+6581968289 ",
        "+65 8196 8289",
        "+65-8196-8289",
        "+6581968289+1",
        "+6581968289*2",
        "++6581968289",
        "+٦٥٨١٩٦٨٢٨٩",  # Arabic-Indic digits are not E.164 digits
        "+SUM(A1:A9)",
        '=HYPERLINK("x")',
        "-1",
        "@crm",
        "\t+6581968289",
        "\r=1",
    ],
)
def test_csv_guards_every_other_formula_like_cell(cell: str) -> None:
    assert csv_safe(cell) == "'" + cell


@given(st.text())
def test_csv_cells_are_never_formulas_and_keep_their_text(text: str) -> None:
    cell = csv_safe(text)
    assert cell in (text, "'" + text)
    if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        assert E164.fullmatch(cell)
        assert cell.isascii()


def test_bad_format_and_bad_number(client: Client, keys: dict[str, str]) -> None:
    assert trail(client, keys, format="xml").status_code == 400
    assert trail(client, keys, msisdn="banana").status_code == 422


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("check", 403),
        ("ingest", 403),
        ("admin", 403),
        ("operator", 403),
        ("revoked", 401),
    ],
)
def test_trail_needs_an_audit_key(
    client: Client, keys: dict[str, str], key: str, status: int
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    before = head(client)
    assert trail(client, keys, key=key).status_code == status
    assert client.get("/v1/review", headers=bearer(keys[key])).status_code == status
    assert head(client) == before


def test_another_tenant_sees_no_trail(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    webhook(client, keys, sms("can you stop the delivery at 5?", "u-flag"))
    theirs = trail(client, keys, key="other").json()
    assert theirs["entries"] == []
    assert theirs["configuration"] == []
    assert theirs["decision"]["state"] == "unknown"
    queue = client.get("/v1/review", headers=bearer(keys["other"])).json()
    assert queue == {"items": [], "count": 0, "next_after_position": None}


# -- review queue ----------------------------------------------------------------------------


def test_review_queue_lists_flagged_and_unresolved_oldest_first(
    client: Client, keys: dict[str, str]
) -> None:
    flagged = webhook(client, keys, sms("can you stop the delivery at 5?", "u-flag"))
    assert flagged["outcome"] == "review"
    tutorial = client.post(
        "/v1/opt-outs",
        content=fixture_body("automation-builder-tutorial-body.json"),
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert tutorial.status_code == 201, tutorial.text
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))  # not a review item

    r = client.get("/v1/review", headers=bearer(keys["audit"]))
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 2
    first, second = body["items"]
    assert first["position"] == flagged["position"]
    assert first["kind"] == "flagged"
    assert first["subaccount"] == "ACME_MKT"
    assert first["msisdn"] == MSISDN
    assert first["keyword"] == "STOP"
    assert first["match"] == "contains"
    assert first["text"] == "can you stop the delivery at 5?"
    assert first["method"] == "8x8-webhook"
    assert first["channel"] == "sms"
    assert first["occurred_at"] == STOP_AT
    assert first["age_seconds"] >= 0
    assert "not clearly a revocation" in first["reason"]
    assert first["actions"] == ["opt_out", "dismiss"]

    assert second["position"] == tutorial.json()["position"]
    assert second["kind"] == "unresolved"
    assert second["subaccount"] == "STOP"  # the name that did not resolve
    assert second["method"] == "automation-http"
    assert "not resolved" in second["reason"]
    assert second["actions"] == ["assign", "dismiss"]


def test_review_queue_limit(client: Client, keys: dict[str, str]) -> None:
    for i in range(3):
        webhook(client, keys, sms("please stop the parcel", f"u{i}"))
    r = client.get("/v1/review", params={"limit": 2}, headers=bearer(keys["audit"]))
    assert [i["position"] for i in r.json()["items"]] == sorted(
        i["position"] for i in r.json()["items"]
    )
    assert r.json()["count"] == 2
    assert (
        client.get("/v1/review", params={"limit": 0}, headers=bearer(keys["audit"])).status_code
        == 400
    )


def test_review_queue_pages_by_position(client: Client, keys: dict[str, str]) -> None:
    made = [
        webhook(client, keys, sms("please stop the parcel", f"u{i}"))["position"] for i in range(5)
    ]

    def page(**params: int) -> dict[str, Any]:
        r = client.get("/v1/review", params=params, headers=bearer(keys["audit"]))
        assert r.status_code == 200, r.text
        return dict(r.json())

    first = page(limit=2)
    assert [i["position"] for i in first["items"]] == made[:2]
    assert first["count"] == 2
    assert first["next_after_position"] == made[1]
    resolved = client.post(
        f"/v1/review/{made[2]}/resolve",
        json={"action": "dismiss", "note": "about a parcel"},
        headers=bearer(keys["admin"]),
    )
    assert resolved.status_code == 200, resolved.text  # closed meanwhile: drops out
    second = page(limit=2, after_position=first["next_after_position"])
    assert [i["position"] for i in second["items"]] == made[3:5]
    assert second["next_after_position"] is None  # nothing follows: no empty last page
    assert page()["next_after_position"] is None
    assert [i["position"] for i in page(after_position=made[4])["items"]] == []
    bad = client.get("/v1/review", params={"after_position": -1}, headers=bearer(keys["audit"]))
    assert bad.status_code == 400
