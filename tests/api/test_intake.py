"""Intake over HTTP: the 8x8 webhook, opt-outs and opt-ins, the quarantine, auth failures."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from litestar.testing import TestClient

from api.settings import Settings
from ledger.entries import decode_evidence
from ledger.errors import StoreUnavailable
from projections.ledger import ConsentLedger

from .conftest import basic, bearer, fixture_body, fixture_json

Client = TestClient  # type: ignore[type-arg]
WEBHOOK = "/v1/webhooks/8x8"
MSISDN = "+6581968289"
STOP_UMID = "3b1f6c2e-7d4a-5e8b-9c10-2f3a4b5c6d7e"


def ledger_of(client: Client) -> ConsentLedger:
    """The ledger the running app writes to."""
    return client.app.state.services.ledger  # type: ignore[no-any-return]


def webhook(client: Client, key: str, body: bytes | dict[str, Any], **headers: str) -> Any:
    """POST a webhook body (bytes as-is, dicts as JSON) with a Bearer key."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        WEBHOOK, content=raw, headers={"Content-Type": "application/json", **bearer(key), **headers}
    )


def sms(
    text: str,
    *,
    umid: str = "u-1",
    subaccount: str = "ACME_MKT",
    source: str = MSISDN,
    timestamp: str = "2026-03-02T09:15:27.431Z",
) -> dict[str, Any]:
    """An inbound-SMS webhook body."""
    body = fixture_json("inbound-sms-stop.json")
    body["payload"].update(
        umid=umid,
        subAccountId=subaccount,
        source=source,
        body=text,  # type: ignore[attr-defined]
        timestamp=timestamp,
    )
    return body


def post_json(client: Client, path: str, key: str, body: dict[str, Any] | bytes) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        path, content=raw, headers={"Content-Type": "application/json", **bearer(key)}
    )


def evidence_of(client: Client, position: int) -> Any:
    _salt, content = ledger_of(client).store.evidence([position])[position]
    assert content is not None
    return decode_evidence(content)


def allowed(client: Client, subaccount: str, msisdn: str = MSISDN, tenant: str = "default") -> bool:
    return ledger_of(client).decide(tenant, subaccount, msisdn).allowed


def metric(client: Client, name: str) -> float:
    """The sum of every sample of metric ``name`` on /metrics."""
    text = client.get("/metrics").text
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


# -- the webhook: each fixture body --------------------------------------------------------
def test_inbound_sms_stop_opts_out_and_keeps_the_exact_body(
    client: Client, keys: dict[str, str]
) -> None:
    raw = fixture_body("inbound-sms-stop.json")
    r = webhook(client, keys["ingest"], raw, **{"X-Request-ID": "req-stop-1"})
    assert r.status_code == 200
    answer = r.json()
    assert answer["outcome"] == "opted_out"
    assert answer["duplicate"] is False
    assert (answer["msisdn"], answer["subaccount"]) == (MSISDN, "ACME_MKT")
    assert (answer["keyword"], answer["match"]) == ("STOP", "exact")
    assert any("registered" in note for note in answer["notes"])
    assert not allowed(client, "ACME_MKT")
    assert allowed(client, "ACME_OTHER")  # a STOP opts out of its own subaccount only
    entry = ledger_of(client).store.read_positions([answer["position"]])[0].entry
    assert entry.key == f"8x8:{STOP_UMID}"
    assert entry.occurred_at == "2026-03-02T09:15:27.431Z"
    assert (entry.event.method, entry.event.channel, entry.event.actor) == (  # type: ignore[union-attr]
        "8x8-webhook",
        "sms",
        "data-subject",
    )
    evidence = evidence_of(client, answer["position"])
    assert evidence.raw_body == raw.decode()
    assert evidence.text == "STOP"
    assert evidence.request_id == "req-stop-1"
    assert evidence.key_id == keys["ingest"].split("_")[1]


def test_inbound_sms_start_opts_back_in(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json"))
    r = webhook(client, keys["ingest"], fixture_body("inbound-sms-start.json"))
    assert r.status_code == 200
    assert r.json()["outcome"] == "opted_in"
    assert r.json()["keyword"] == "START"
    assert allowed(client, "ACME_MKT")


def test_inbound_sms_start_alone_is_an_opt_in(client: Client, keys: dict[str, str]) -> None:
    r = webhook(client, keys["ingest"], fixture_body("inbound-sms-start.json"))
    assert (r.status_code, r.json()["outcome"]) == (200, "opted_in")


def test_chatapps_stop_opts_out_on_the_whatsapp_channel(
    client: Client, keys: dict[str, str]
) -> None:
    r = webhook(client, keys["ingest"], fixture_body("inbound-chatapps-stop.json"))
    answer = r.json()
    assert (r.status_code, answer["outcome"]) == (200, "opted_out")
    assert (answer["msisdn"], answer["subaccount"]) == ("+6591234567", "ACME_CARE")
    assert answer["match"] == "phrase"  # "Stop please"
    entry = ledger_of(client).store.read_positions([answer["position"]])[0].entry
    assert entry.event.channel == "whatsapp"  # type: ignore[union-attr]
    assert evidence_of(client, answer["position"]).profile_name == "Tan"
    assert not allowed(client, "ACME_CARE", "+6591234567")


def test_chatapps_sender_without_plus_is_read_as_international(
    client: Client, keys: dict[str, str]
) -> None:
    body = fixture_json("inbound-chatapps-stop.json")
    body["payload"]["user"]["msisdn"] = "6591234567"  # type: ignore[index]
    assert webhook(client, keys["ingest"], body).json()["msisdn"] == "+6591234567"


def test_older_formats_are_read(client: Client, keys: dict[str, str]) -> None:
    flat = {"umid": "old-1", "subAccountId": "ACME_MKT", "source": MSISDN, "body": "STOP"}
    chat = {
        "eventType": "inbound_message_received",
        "payload": {
            "umid": "old-2",
            "subAccountId": "ACME_CARE",
            "user": {"msisdn": "+6591234567"},
            "content": {"text": "stop"},
        },
    }
    assert webhook(client, keys["ingest"], flat).json()["outcome"] == "opted_out"
    answer = webhook(client, keys["ingest"], chat).json()
    assert (answer["outcome"], answer["msisdn"]) == ("opted_out", "+6591234567")


def test_json_with_another_content_type_is_still_read(client: Client, keys: dict[str, str]) -> None:
    """A STOP is not lost because of a header: the body decides, not the content type."""
    r = client.post(
        WEBHOOK,
        content=fixture_body("inbound-sms-stop.json"),
        headers={"Content-Type": "text/plain", **bearer(keys["ingest"])},
    )
    assert (r.status_code, r.json()["outcome"]) == (200, "opted_out")


def test_control_characters_in_the_text_do_not_lose_a_stop(
    client: Client, keys: dict[str, str]
) -> None:
    r = webhook(client, keys["ingest"], sms("STOP\u0000\u0007"))
    assert (r.status_code, r.json()["outcome"]) == (200, "opted_out")
    assert evidence_of(client, r.json()["position"]).text == "STOP\u0000\u0007"


def test_webhook_help_review_and_none(client: Client, keys: dict[str, str]) -> None:
    key = keys["ingest"]
    assert webhook(client, key, sms("HELP", umid="h")).json()["outcome"] == "help"
    review = webhook(client, key, sms("can you stop the delivery at 5?", umid="r")).json()
    assert review["outcome"] == "review"
    queue = ledger_of(client).review_queue("default")
    assert [item.position for item in queue] == [review["position"]]
    head = ledger_of(client).head()
    none = webhook(client, key, sms("see you at 5", umid="n")).json()
    assert (none["outcome"], none["position"], none["duplicate"]) == ("none", None, False)
    assert ledger_of(client).head() == head  # a `none` message is answered, not stored


def test_webhook_retry_same_umid_five_times_is_one_entry(
    client: Client, keys: dict[str, str]
) -> None:
    answers = [
        webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json")).json()
        for _ in range(5)
    ]
    assert {a["position"] for a in answers} == {answers[0]["position"]}
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert {a["outcome"] for a in answers} == {"opted_out"}
    entries = ledger_of(client).history("default", MSISDN)
    assert len(entries) == 1
    assert ledger_of(client).head() == answers[0]["position"]


def test_delivery_receipt_is_ignored(client: Client, keys: dict[str, str]) -> None:
    receipt = {
        "namespace": "SMS",
        "eventType": "outbound_message_status_changed",
        "payload": {"umid": "dr-1", "subAccountId": "ACME_MKT", "status": {"state": "delivered"}},
    }
    head = ledger_of(client).head()
    r = webhook(client, keys["ingest"], receipt)
    assert r.status_code == 200
    assert r.json()["outcome"] == "ignored"
    assert r.json()["position"] is None
    assert "outbound_message_status_changed" in r.json()["reason"]
    assert ledger_of(client).head() == head
    assert client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"] == []


def test_future_provider_time_is_replaced_for_an_opt_out(
    client: Client, keys: dict[str, str]
) -> None:
    r = webhook(client, keys["ingest"], sms("STOP", timestamp="2099-01-01T00:00:00Z"))
    answer = r.json()
    assert answer["outcome"] == "opted_out"
    assert any("future" in note for note in answer["notes"])
    entry = ledger_of(client).store.read_positions([answer["position"]])[0].entry
    assert entry.occurred_at < "2099"
    assert entry.event.provider_time == "2099-01-01T00:00:00.000Z"  # type: ignore[union-attr]


def test_future_dated_opt_in_is_quarantined(client: Client, keys: dict[str, str]) -> None:
    head = ledger_of(client).head()
    r = webhook(client, keys["ingest"], sms("START", timestamp="2099-01-01T00:00:00Z"))
    assert (r.status_code, r.json()["outcome"]) == (200, "quarantined")
    assert "future" in r.json()["reason"]
    assert ledger_of(client).head() == head


def test_store_unavailable_is_503_not_quarantined(
    client: Client, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_: object) -> None:
        raise StoreUnavailable("database or disk is full")

    monkeypatch.setattr(ledger_of(client), "append", full)
    monkeypatch.setattr(ledger_of(client), "append_each", full)
    r = webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json"))
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Retry-After" in r.headers
    assert client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"] == []


def test_webhook_counts_outcomes_and_appends(client: Client, keys: dict[str, str]) -> None:
    outcomes = metric(client, "consent_ledger_webhook_outcomes_total")
    appends = metric(client, "consent_ledger_appends_total")
    webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json"))
    webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json"))
    assert metric(client, "consent_ledger_webhook_outcomes_total") == outcomes + 2
    assert metric(client, "consent_ledger_appends_total") == appends + 2  # registration + STOP


# -- the quarantine ------------------------------------------------------------------------
def test_quarantine_lists_the_tenants_bodies_oldest_first(
    client: Client, keys: dict[str, str]
) -> None:
    bodies = [b'{"namespace": "SMS", "payl', b"\xff\xfe not utf-8", b"[1, 2]"]
    for body in bodies:
        r = webhook(client, keys["ingest"], body, **{"X-Request-ID": "q"})
        assert r.json()["outcome"] == "quarantined"
    webhook(client, keys["other"], b"{")
    page = client.get("/v1/quarantine?limit=2", headers=bearer(keys["audit"])).json()
    assert len(page["items"]) == 2
    rest = client.get(
        f"/v1/quarantine?after_id={page['next_after_id']}", headers=bearer(keys["audit"])
    ).json()
    items = page["items"] + rest["items"]
    assert rest["next_after_id"] is None
    assert [base64.b64decode(i["body_base64"]) for i in items] == bodies
    assert items[1]["body"].endswith(" not utf-8")
    assert "\ufffd" in items[1]["body"]
    assert all(i["reason"] and i["request_id"] == "q" for i in items)
    assert items[0]["content_type"] == "application/json"
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)


def test_quarantine_needs_the_audit_scope(client: Client, keys: dict[str, str]) -> None:
    r = client.get("/v1/quarantine", headers=bearer(keys["ingest"]))
    assert r.status_code == 403


# -- opt-outs and opt-ins ------------------------------------------------------------------
def register(client: Client, subaccount: str = "ACME_MKT") -> None:
    ledger_of(client).configure_subaccount("default", subaccount, actor="test")


def test_corrected_automation_body_dedupes_against_the_webhook(
    client: Client, keys: dict[str, str]
) -> None:
    stop = webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json")).json()
    head = ledger_of(client).head()
    r = post_json(
        client,
        "/v1/opt-outs",
        keys["ingest"],
        fixture_body("automation-builder-corrected-body.json"),
    )
    assert r.status_code == 200
    answer = r.json()
    assert (answer["duplicate"], answer["position"]) == (True, stop["position"])
    assert (answer["outcome"], answer["scope"], answer["unresolved"]) == (
        "opted_out",
        "subaccount",
        False,
    )
    assert ledger_of(client).head() == head


def test_corrected_automation_body_first_then_the_webhook(
    client: Client, keys: dict[str, str]
) -> None:
    register(client)
    r = post_json(
        client,
        "/v1/opt-outs",
        keys["ingest"],
        fixture_body("automation-builder-corrected-body.json"),
    )
    assert r.status_code == 201
    answer = r.json()
    assert (answer["subaccount"], answer["keyword"], answer["duplicate"]) == (
        "ACME_MKT",
        "STOP",
        False,
    )
    stop = webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json")).json()
    assert (stop["duplicate"], stop["position"]) == (True, answer["position"])
    entry = ledger_of(client).store.read_positions([answer["position"]])[0].entry
    assert (entry.event.method, entry.event.actor) == ("automation-http", "data-subject")  # type: ignore[union-attr]


def test_tutorial_body_opts_out_tenant_wide_and_is_queued(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    register(client, "ACME_MKT")
    r = post_json(
        client,
        "/v1/opt-outs",
        keys["ingest"],
        fixture_body("automation-builder-tutorial-body.json"),
    )
    assert r.status_code == 201
    answer = r.json()
    assert (answer["outcome"], answer["scope"], answer["unresolved"]) == (
        "opted_out",
        "tenant",
        True,
    )
    assert answer["subaccount"] is None
    note = " ".join(answer["notes"])
    assert "'STOP' is not known" in note
    assert "{{data.payload.subAccountId}}" in note
    reader = ConsentLedger(settings.db)
    queue = reader.review_queue("default")
    reader.close()
    assert [(i.position, i.kind, i.subaccount) for i in queue] == [
        (answer["position"], "unresolved", "STOP")
    ]
    assert not allowed(client, "ACME_MKT")
    assert not allowed(client, "ANY_OTHER")


def test_opt_out_with_idempotency_key(client: Client, keys: dict[str, str]) -> None:
    register(client)
    body = {
        "msisdn": MSISDN,
        "subaccount": "ACME_MKT",
        "idempotency_key": "crm-1",
        "occurred_at": "2026-01-05T10:00:00+08:00",
    }
    first = post_json(client, "/v1/opt-outs", keys["ingest"], body)
    again = post_json(client, "/v1/opt-outs", keys["ingest"], body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True
    assert again.json()["position"] == first.json()["position"]
    entry = ledger_of(client).store.read_positions([first.json()["position"]])[0].entry
    assert (entry.key, entry.occurred_at) == ("api:crm-1", "2026-01-05T02:00:00.000Z")


CHANGES = [
    {"msisdn": "+6591234567"},
    {"subaccount": "ACME_CARE"},
    {"occurred_at": "2026-01-06T10:00:00Z"},
    {"text": "STOP please"},
]
CHANGE_IDS = ["msisdn", "subaccount", "occurred_at", "text"]


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
def test_idempotency_key_reused_by_another_opt_out_records_it_flagged(
    client: Client, keys: dict[str, str], change: dict[str, str]
) -> None:
    """A reused key never swallows another STOP: a derived key, queued for review."""
    register(client, "ACME_MKT")
    register(client, "ACME_CARE")
    body = {
        "msisdn": MSISDN,
        "subaccount": "ACME_MKT",
        "text": "STOP",
        "idempotency_key": "crm-2",
        "occurred_at": "2026-01-05T10:00:00Z",
    }
    first = post_json(client, "/v1/opt-outs", keys["ingest"], body)
    assert first.status_code == 201
    again = {**body, **change}
    r = post_json(client, "/v1/opt-outs", keys["ingest"], again)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["position"] != first.json()["position"]
    assert "reused key" in answer["flagged"]
    entry = ledger_of(client).store.read_from(answer["position"], 1)[0].entry
    assert entry.key.startswith("api:crm-2~")
    queued = ledger_of(client).review_queue("default")
    assert (queued[-1].position, queued[-1].kind) == (answer["position"], "check")
    assert not allowed(client, again["subaccount"], again["msisdn"])
    retry = post_json(client, "/v1/opt-outs", keys["ingest"], again)  # a retry of the second
    assert (retry.status_code, retry.json()["position"]) == (200, answer["position"])


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
def test_idempotency_key_reused_by_another_opt_in_is_409(
    client: Client, keys: dict[str, str], change: dict[str, str]
) -> None:
    register(client, "ACME_MKT")
    register(client, "ACME_CARE")
    body = {
        "msisdn": MSISDN,
        "subaccount": "ACME_MKT",
        "text": "START",
        "idempotency_key": "crm-2",
        "occurred_at": "2026-01-05T10:00:00Z",
    }
    if change.get("text"):
        change = {"text": "YES"}
    assert post_json(client, "/v1/opt-ins", keys["ingest"], body).status_code == 201
    head = ledger_of(client).head()
    r = post_json(client, "/v1/opt-ins", keys["ingest"], {**body, **change})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "crm-2" in r.json()["detail"]
    assert ledger_of(client).head() == head


def test_idempotency_key_reused_for_the_other_verb_is_409(
    client: Client, keys: dict[str, str]
) -> None:
    register(client)
    body = {"msisdn": MSISDN, "subaccount": "ACME_MKT", "idempotency_key": "crm-3"}
    assert post_json(client, "/v1/opt-outs", keys["ingest"], body).status_code == 201
    r = post_json(client, "/v1/opt-ins", keys["ingest"], body)
    assert r.status_code == 409


def test_umid_the_webhook_flagged_for_review_is_not_turned_into_an_opt_out(
    client: Client, keys: dict[str, str]
) -> None:
    """Rule 4: a sentence that merely contains STOP is for a person to judge, not a workflow."""
    review = webhook(client, keys["ingest"], sms("please STOP the delivery at 5", umid="m-9"))
    assert review.json()["outcome"] == "review"
    head = ledger_of(client).head()
    body = {
        "msisdn": MSISDN,
        "subaccount": "ACME_MKT",
        "text": "please STOP the delivery at 5",
        "umid": "m-9",
    }
    r = post_json(client, "/v1/opt-outs", keys["ingest"], body)
    assert r.status_code == 201  # an explicit opt-out is never refused: it suppresses …
    assert "review.flagged" in r.json()["flagged"]  # … and a person is asked to check it
    assert ledger_of(client).head() == head + 1


def test_opt_out_verb_wins_over_the_text(client: Client, keys: dict[str, str]) -> None:
    register(client)
    r = post_json(
        client,
        "/v1/opt-outs",
        keys["ingest"],
        {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "thanks, bye"},
    )
    assert (r.status_code, r.json()["outcome"]) == (201, "opted_out")
    assert any("recorded as an opt-out" in n for n in r.json()["notes"])
    assert evidence_of(client, r.json()["position"]).text == "thanks, bye"
    assert not allowed(client, "ACME_MKT")


def test_opt_out_in_the_future_is_recorded_at_receive_time(
    client: Client, keys: dict[str, str]
) -> None:
    register(client)
    r = post_json(
        client,
        "/v1/opt-outs",
        keys["ingest"],
        {"msisdn": MSISDN, "subaccount": "ACME_MKT", "occurred_at": "2099-01-01T00:00:00Z"},
    )
    assert r.status_code == 201
    assert r.json()["time_replaced"] is True
    assert any("future" in n for n in r.json()["notes"])
    assert not allowed(client, "ACME_MKT")


def test_opt_in_records_consent(client: Client, keys: dict[str, str]) -> None:
    register(client)
    body = {
        "msisdn": "8196 8289",
        "subaccount": "ACME_MKT",
        "text": "START",
        "purpose": "marketing",
        "notice_version": "2026-01",
        "method": "api",
        "actor": "web-form",
    }
    ledger_of(client).configure_subaccount("default", "ACME_MKT", actor="t", default_region="SG")
    r = post_json(client, "/v1/opt-ins", keys["ingest"], body)
    assert r.status_code == 201
    answer = r.json()
    assert (answer["outcome"], answer["msisdn"], answer["keyword"]) == ("opted_in", MSISDN, "START")
    event = ledger_of(client).store.read_positions([answer["position"]])[0].entry.event
    assert (event.method, event.actor, event.purpose, event.notice_version) == (  # type: ignore[union-attr]
        "api",
        "data-subject",  # who performed it: set by the server, never by the client
        "marketing",
        "2026-01",
    )
    assert event.claimed_actor == "web-form"  # type: ignore[union-attr]
    assert event.recorded_by == f"key:{keys['ingest'].split('_')[1]}"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "STOP"}, "reads as an opt-out"),
        ({"msisdn": MSISDN, "subaccount": "NEVER_SEEN"}, "not known"),
        (
            {"msisdn": MSISDN, "subaccount": "ACME_MKT", "occurred_at": "2099-01-01T00:00:00Z"},
            "future",
        ),
    ],
    ids=["opt-out-text", "unknown-subaccount", "future"],
)
def test_opt_in_refusals_are_422(
    client: Client, keys: dict[str, str], body: dict[str, str], fragment: str
) -> None:
    register(client)
    head = ledger_of(client).head()
    r = post_json(client, "/v1/opt-ins", keys["ingest"], body)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert fragment in r.json()["detail"]
    assert ledger_of(client).head() == head


# -- auth ----------------------------------------------------------------------------------
def auth_failures(client: Client) -> float:
    return metric(client, "consent_ledger_webhook_auth_failures_total")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ("check", 403),
        ("revoked", 401),
        ("none", 401),
        ("operator", 403),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Basic not-base64!"}, 401),
        ({"Authorization": "Token abc"}, 401),
    ],
    ids=[
        "no-key",
        "wrong-scope",
        "revoked",
        "unknown-key",
        "operator",
        "empty-bearer",
        "bad-basic",
        "other-scheme",
    ],
)
def test_webhook_auth_failures_are_problems_and_counted(
    client: Client, keys: dict[str, str], headers: dict[str, str] | str, status: int
) -> None:
    hdrs = bearer(keys[headers]) if isinstance(headers, str) else headers
    before = auth_failures(client)
    head = ledger_of(client).head()
    r = client.post(WEBHOOK, content=fixture_body("inbound-sms-stop.json"), headers=hdrs)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status
    assert auth_failures(client) == before + 1
    assert ledger_of(client).head() == head


@pytest.mark.parametrize("path", ["/v1/opt-outs", "/v1/opt-ins"])
def test_opt_out_and_opt_in_auth(client: Client, keys: dict[str, str], path: str) -> None:
    body = fixture_body("automation-builder-corrected-body.json")
    for hdrs, status in [
        ({}, 401),
        (bearer(keys["check"]), 403),
        (bearer(keys["revoked"]), 401),
        (bearer(keys["audit"]), 403),
    ]:
        r = client.post(path, content=body, headers={"Content-Type": "application/json", **hdrs})
        assert r.status_code == status
        assert r.headers["content-type"].startswith("application/problem+json")


def test_basic_auth_with_the_key_as_password(client: Client, keys: dict[str, str]) -> None:
    r = client.post(
        WEBHOOK,
        content=fixture_body("inbound-sms-stop.json"),
        headers={"Content-Type": "application/json", **basic(keys["ingest"])},
    )
    assert (r.status_code, r.json()["outcome"]) == (200, "opted_out")


def test_another_tenants_entries_do_not_affect_this_tenant(
    client: Client, keys: dict[str, str]
) -> None:
    r = webhook(client, keys["other"], fixture_body("inbound-sms-stop.json"))
    assert r.json()["outcome"] == "opted_out"
    assert ledger_of(client).history("default", MSISDN) == []
    assert allowed(client, "ACME_MKT")
    assert not allowed(client, "ACME_MKT", tenant="other")
    mine = webhook(client, keys["ingest"], fixture_body("inbound-sms-stop.json")).json()
    assert mine["duplicate"] is False  # the umid key space is per tenant
    webhook(client, keys["other"], b"not json")
    assert client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"] == []


# -- webhooks recorded a batch at a time ----------------------------------------------------
def test_a_batch_of_webhooks_is_answered_as_if_each_came_alone(
    client: Client, keys: dict[str, str]
) -> None:
    from api.keys import Principal
    from api.quarantine import Received
    from api.routes.intake import Hook, WebhookAnswer, WebhookSkipped, record_webhooks
    from api.state import services_of

    from .conftest import head, sms

    services = services_of(client.app)
    assert webhook(client, keys["ingest"], sms("STOP", "batch-0")).status_code == 200  # ACME_MKT
    before = head(client)
    me = Principal("k", "default", frozenset({"ingest"}))
    received = Received(received_at="2026-03-02T09:15:28.000Z", request_id="batch")
    delivery = fixture_json("inbound-sms-stop.json")
    delivery["eventType"] = "outbound_message_status_changed"
    hooks = [
        Hook(me, sms("STOP", "batch-1"), received),
        Hook(me, b"{not json", received),  # quarantined alone
        Hook(me, sms("START", "batch-2"), received),
        Hook(me, sms("STOP", "batch-1"), received),  # the same umid again, in the same batch
        Hook(Principal("op", None, frozenset({"ingest"})), sms("STOP", "batch-3"), received),
        Hook(me, sms("hello there", "batch-4"), received),  # nothing to store
        Hook(me, json.dumps(delivery).encode(), received),  # not an inbound message
        Hook(me, sms("STOP", "batch-5", subaccount="NEW_SUB"), received),  # registers NEW_SUB
    ]
    stop, bad, start, repeat, operator, hello, ignored, new_sub = record_webhooks(services, hooks)
    assert isinstance(stop, WebhookAnswer)
    assert (stop.outcome, stop.duplicate) == ("opted_out", False)
    assert isinstance(bad, WebhookSkipped)
    assert bad.outcome == "quarantined"
    assert isinstance(start, WebhookAnswer)
    assert start.outcome == "opted_in"
    assert isinstance(repeat, WebhookAnswer)
    assert repeat.duplicate
    assert repeat.position == stop.position
    assert isinstance(operator, Exception)  # a tenant route: 403 for that request alone
    assert isinstance(hello, WebhookAnswer)
    assert (hello.outcome, hello.position) == ("none", None)
    assert isinstance(ignored, WebhookSkipped)
    assert ignored.outcome == "ignored"
    assert isinstance(new_sub, WebhookAnswer)
    assert new_sub.outcome == "opted_out"
    assert any("registered" in note for note in new_sub.notes)
    # the STOP, the START, NEW_SUB's registration and its STOP: dense, in the batch's order
    assert head(client) == before + 4
    assert [stop.position, start.position, new_sub.position] == [before + 1, before + 2, before + 4]


def test_concurrent_webhooks_each_get_their_own_answer(
    client: Client, keys: dict[str, str]
) -> None:
    import concurrent.futures

    from .conftest import sms

    bodies = [sms("STOP", f"conc-{i}") for i in range(20)] + [b"\xff\xfe broken"] * 3
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: webhook(client, keys["ingest"], b), bodies))
    assert all(r.status_code == 200 for r in responses)
    answers = [r.json() for r in responses]
    stored = [a for a in answers if a["outcome"] == "opted_out"]
    assert len(stored) == 20
    assert len({a["position"] for a in stored}) == 20
    assert [a["outcome"] for a in answers[20:]] == ["quarantined"] * 3
