"""Bad input at the intake endpoints: nothing refused reaches the log, no STOP is refused.

The webhook and ``/v1/opt-outs`` answer 200 ``quarantined`` (a 4XX would only make 8x8 retry, or
lose a STOP) and keep a body they cannot read or that names no usable number; anything else that
may mean stop is recorded, whatever its ids, time or extra fields. ``/v1/opt-ins`` stays strict
and answers RFC 9457 problems: 400 for a body that is not the schema (malformed JSON, unknown
fields, wrong types), 422 for values a person must fix (number, time, control characters, text
over 4,096 characters). Every endpoint answers 413 for a body over 1 MiB.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from litestar.testing import TestClient

from api.limits import MAX_TEXT_CHARS

from .conftest import bearer, fixture_body, fixture_json

Client = TestClient  # type: ignore[type-arg]
MSISDN = "+6581968289"
MiB = 1024 * 1024


def head(client: Client) -> int:
    return client.app.state.services.ledger.head()  # type: ignore[no-any-return]


def sms_with(**payload: Any) -> bytes:
    """The inbound-SMS STOP fixture with ``payload`` fields replaced (``None`` removes one)."""
    body = fixture_json("inbound-sms-stop.json")
    inner: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    for name, value in payload.items():
        if value is None:
            inner.pop(name)
        else:
            inner[name] = value
    return json.dumps(body).encode()


STOP = fixture_body("inbound-sms-stop.json")
JSON = "application/json"

WEBHOOK_CASES = [
    ("malformed-json", b'{"namespace": "SMS", payload: {}}', JSON, "not valid JSON"),
    ("truncated-json", STOP[:70], JSON, "not valid JSON"),
    ("json-array", b"[" + STOP + b"]", JSON, "JSON list, not an object"),
    ("json-string", b'"STOP"', JSON, "JSON str, not an object"),
    ("empty-body", b"", JSON, "empty"),
    (
        "form-encoded",
        b"source=%2B6581968289&body=STOP",
        "application/x-www-form-urlencoded",
        "not valid JSON",
    ),
    ("invalid-utf8", STOP.replace(b'"STOP"', b'"ST\xffOP"'), JSON, "not valid UTF-8"),
    ("nul-in-sender", sms_with(source="+6581968289\u0000"), JSON, "phone number"),
    ("control-in-sender", sms_with(source="+65\u000781968289"), JSON, "phone number"),
    ("missing-sender", sms_with(source=None), JSON, "no usable sender"),
    ("templated-sender", sms_with(source="{{data.payload.source}}"), JSON, "no usable sender"),
    ("invalid-number", sms_with(source="+12345"), JSON, "phone number"),
    ("letters-number", sms_with(source="ACME"), JSON, "phone number"),
    ("missing-text", sms_with(body=None), JSON, "no usable message text"),
    ("templated-text", sms_with(body="{{data.payload.body}}"), JSON, "no usable message text"),
    ("number-as-text", sms_with(body=5), JSON, "not a string"),
    (
        "payload-not-object",
        b'{"eventType": "inbound_message_received", "payload": []}',
        JSON,
        "payload",
    ),
    ("no-event-no-sender", b'{"hello": "world"}', JSON, "not an 8x8 inbound message"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [case[1:] for case in WEBHOOK_CASES],
    ids=[case[0] for case in WEBHOOK_CASES],
)
def test_webhook_quarantines_what_it_cannot_understand(
    client: Client, keys: dict[str, str], body: bytes, content_type: str, fragment: str
) -> None:
    before = head(client)
    r = client.post(
        "/v1/webhooks/8x8",
        content=body,
        headers={"Content-Type": content_type, "X-Request-ID": "bad-1", **bearer(keys["ingest"])},
    )
    assert r.status_code == 200
    answer = r.json()
    assert (answer["outcome"], answer["position"]) == ("quarantined", None)
    assert fragment in answer["reason"]
    assert head(client) == before
    items = client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"]
    assert len(items) == 1
    kept = items[0]
    assert base64.b64decode(kept["body_base64"]) == body
    assert (kept["reason"], kept["request_id"]) == (answer["reason"], "bad-1")
    assert kept["content_type"] == content_type


def test_webhook_body_over_1_mib_is_413(client: Client, keys: dict[str, str]) -> None:
    """No 8x8 message is near 1 MiB: such a body is refused before it is read, not kept."""
    r = client.post(
        "/v1/webhooks/8x8",
        content=b"{" + b" " * MiB + b"}",
        headers={"Content-Type": JSON, **bearer(keys["ingest"])},
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"] == []


# What used to be quarantined and now means a STOP that counts (docs/http-api.md, "Intake").
WEBHOOK_STOPS = [
    ("nul-in-subaccount", sms_with(subAccountId="ACME\u0000MKT"), "tenant"),
    ("control-in-umid", sms_with(umid="abc\u001bdef"), "subaccount"),
    ("missing-umid", sms_with(umid=None), "subaccount"),
    ("missing-subaccount", sms_with(subAccountId=None), "tenant"),
    ("bad-subaccount", sms_with(subAccountId="ACME MKT"), "tenant"),
    ("naive-timestamp", sms_with(timestamp="2026-03-02T09:15:27"), "subaccount"),
    ("garbage-timestamp", sms_with(timestamp="yesterday"), "subaccount"),
    ("numeric-timestamp", sms_with(timestamp=1772442927), "subaccount"),
    ("list-as-text", sms_with(body=["STOP"]), "subaccount"),
]


@pytest.mark.parametrize(
    ("body", "scope"), [case[1:] for case in WEBHOOK_STOPS], ids=[c[0] for c in WEBHOOK_STOPS]
)
def test_webhook_records_a_stop_whatever_its_ids_and_time(
    client: Client, keys: dict[str, str], body: bytes, scope: str
) -> None:
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    r = client.post(
        "/v1/webhooks/8x8", content=body, headers={"Content-Type": JSON, **bearer(keys["ingest"])}
    )
    assert r.status_code == 200
    answer = r.json()
    assert answer["outcome"] == "opted_out", answer
    entry = client.app.state.services.ledger.store.read_from(answer["position"], 1)[0].entry
    assert (entry.msisdn, entry.event.scope) == (MSISDN, scope)


def test_webhook_keeps_a_long_text_capped_in_the_evidence(
    client: Client, keys: dict[str, str]
) -> None:
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    body = sms_with(body="STOP " + "x" * 100_000)
    r = client.post(
        "/v1/webhooks/8x8", content=body, headers={"Content-Type": JSON, **bearer(keys["ingest"])}
    )
    assert r.json()["outcome"] == "review"


# -- opt-outs --------------------------------------------------------------------------------
GOOD = {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "hello"}


def body_with(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


OPT_OUT_CASES = [
    ("malformed-json", b'{"msisdn": "+6581968289", subaccount}', "quarantined"),
    ("truncated-json", body_with()[:30], "quarantined"),
    ("json-array", b"[" + body_with() + b"]", "quarantined"),
    ("empty-body", b"", "quarantined"),
    ("invalid-utf8", body_with().replace(b"hello", b"hel\xfflo"), "quarantined"),
    ("missing-msisdn", json.dumps({"subaccount": "ACME_MKT"}).encode(), "quarantined"),
    ("invalid-number", body_with(msisdn="+12345"), "quarantined"),
    ("nul-in-number", body_with(msisdn="+6581968289\u0000"), "quarantined"),
    ("templated-number", body_with(msisdn="{{data.payload.source}}"), "quarantined"),
    ("unknown-field", body_with(subAccountId="ACME_MKT"), "subaccount"),
    ("msisdn-as-number", body_with(msisdn=6581968289), "subaccount"),
    ("webhook-method", body_with(method="8x8-webhook"), "subaccount"),
    ("method-as-object", body_with(method={}), "subaccount"),
    ("method-as-list", body_with(method=["api"]), "subaccount"),
    ("naive-time", body_with(occurred_at="2026-03-02T09:15:27"), "subaccount"),
    ("garbage-time", body_with(occurred_at="last tuesday"), "subaccount"),
    ("time-as-number", body_with(occurred_at=1772442927), "subaccount"),
    ("nul-in-subaccount", body_with(subaccount="ACME\u0000MKT"), "tenant"),
    ("control-in-subaccount", body_with(subaccount="ACME\u0007MKT"), "tenant"),
    ("newline-in-subaccount", body_with(subaccount="ACME_MKT\n"), "subaccount"),
    ("empty-subaccount", body_with(subaccount=""), "tenant"),
    ("subaccount-as-number", body_with(subaccount=42), "tenant"),
    ("nul-in-idempotency-key", body_with(idempotency_key="k\u00001"), "subaccount"),
    ("control-in-actor", body_with(actor="agent\u001b[31m"), "subaccount"),
    ("long-umid", body_with(umid="u" * 129), "subaccount"),
    ("long-keyword", body_with(keyword="K" * 65), "subaccount"),
    ("long-text", body_with(text="x" * (MAX_TEXT_CHARS + 1)), "subaccount"),
    ("very-long-text", body_with(text="STOP " * 20_000), "subaccount"),
    ("text-as-object", body_with(text={"body": "STOP"}), "subaccount"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in OPT_OUT_CASES], ids=[c[0] for c in OPT_OUT_CASES]
)
def test_opt_outs_record_or_quarantine_every_body(
    client: Client, keys: dict[str, str], body: bytes, expected: str
) -> None:
    """Never a 4XX: recorded (and suppressing) with the scope shown, or quarantined."""
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    before = head(client)
    r = client.post(
        "/v1/opt-outs", content=body, headers={"Content-Type": JSON, **bearer(keys["ingest"])}
    )
    answer = r.json()
    if expected == "quarantined":
        assert (r.status_code, answer["outcome"]) == (200, "quarantined"), answer
        assert head(client) == before
        items = client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"]
        assert base64.b64decode(items[-1]["body_base64"]) == body
        return
    assert (r.status_code, answer["outcome"], answer["scope"]) == (201, "opted_out", expected)
    decision = client.get(f"/v1/consent/ACME_MKT/{MSISDN}", headers=bearer(keys["check"]))
    assert decision.json()["allowed"] is False


def test_opt_out_over_1_mib_is_413(client: Client, keys: dict[str, str]) -> None:
    r = client.post(
        "/v1/opt-outs",
        content=body_with(text="x" * MiB),
        headers={"Content-Type": JSON, **bearer(keys["ingest"])},
    )
    assert r.status_code == 413


# -- opt-ins ---------------------------------------------------------------------------------
CONSENT_CASES = [
    ("malformed-json", b'{"msisdn": "+6581968289", subaccount}', 400),
    ("truncated-json", body_with()[:30], 400),
    ("json-array", b"[" + body_with() + b"]", 400),
    ("empty-body", b"", 400),
    ("unknown-field", body_with(subAccountId="ACME_MKT"), 400),
    ("missing-msisdn", json.dumps({"subaccount": "ACME_MKT"}).encode(), 400),
    ("msisdn-as-number", body_with(msisdn=6581968289), 400),
    ("webhook-method", body_with(method="8x8-webhook"), 400),
    ("invalid-utf8", body_with().replace(b"hello", b"hel\xfflo"), 400),
    ("invalid-number", body_with(msisdn="+12345"), 422),
    ("nul-in-number", body_with(msisdn="+6581968289\u0000"), 422),
    ("naive-time", body_with(occurred_at="2026-03-02T09:15:27"), 422),
    ("garbage-time", body_with(occurred_at="last tuesday"), 422),
    ("nul-in-subaccount", body_with(subaccount="ACME\u0000MKT"), 422),
    ("control-in-subaccount", body_with(subaccount="ACME\u0007MKT"), 422),
    ("newline-in-subaccount", body_with(subaccount="ACME_MKT\n"), 422),
    ("empty-subaccount", body_with(subaccount=""), 422),
    ("nul-in-idempotency-key", body_with(idempotency_key="k\u00001"), 422),
    ("control-in-actor", body_with(actor="agent\u001b[31m"), 422),
    ("long-umid", body_with(umid="u" * 129), 422),
    ("long-keyword", body_with(keyword="K" * 65), 422),
    ("long-text", body_with(text="x" * (MAX_TEXT_CHARS + 1)), 422),
    ("very-long-text", body_with(text="STOP " * 20_000), 422),
    ("over-1-mib", body_with(text="x" * MiB), 413),
]


@pytest.mark.parametrize("path", ["/v1/opt-ins"])
@pytest.mark.parametrize(
    ("body", "status"),
    [case[1:] for case in CONSENT_CASES],
    ids=[case[0] for case in CONSENT_CASES],
)
def test_opt_ins_refuse_bad_input_as_problems(
    client: Client, keys: dict[str, str], path: str, body: bytes, status: int
) -> None:
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    before = head(client)
    r = client.post(path, content=body, headers={"Content-Type": JSON, **bearer(keys["ingest"])})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status
    assert problem["detail"]
    assert head(client) == before


@pytest.mark.parametrize("path", ["/v1/opt-outs", "/v1/opt-ins"])
def test_text_up_to_the_limit_is_accepted(client: Client, keys: dict[str, str], path: str) -> None:
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    r = client.post(
        path,
        content=body_with(text="x" * MAX_TEXT_CHARS),
        headers={"Content-Type": JSON, **bearer(keys["ingest"])},
    )
    assert r.status_code == 201


@pytest.mark.parametrize("path", ["/v1/opt-outs", "/v1/opt-ins"])
def test_control_characters_in_text_are_kept_as_evidence(
    client: Client, keys: dict[str, str], path: str
) -> None:
    """The text is evidence, not an identifier: it is stored as received."""
    client.app.state.services.ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    r = client.post(
        path,
        content=body_with(text="line one\nline\ttwo\u0000"),
        headers={"Content-Type": JSON, **bearer(keys["ingest"])},
    )
    assert r.status_code == 201
