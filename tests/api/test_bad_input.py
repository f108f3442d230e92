"""Bad input at the intake endpoints: nothing refused reaches the log.

The webhook answers 200 ``quarantined`` (a 4XX would only make 8x8 retry) and keeps the body;
``/v1/opt-outs`` and ``/v1/opt-ins`` answer RFC 9457 problems: 400 for a body that is not the
schema (malformed JSON, unknown fields, wrong types), 422 for values a person must fix (number,
time, control characters, text over 4,096 characters), 413 for a body over 1 MiB.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from litestar.testing import TestClient

from api.payloads import MAX_TEXT_CHARS

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
    ("nul-in-subaccount", sms_with(subAccountId="ACME\u0000MKT"), JSON, "subAccountId"),
    ("control-in-umid", sms_with(umid="abc\u001bdef"), JSON, "umid"),
    ("very-long-text", sms_with(body="STOP " + "x" * 100_000), JSON, "characters long"),
    ("missing-sender", sms_with(source=None), JSON, "no sender"),
    ("invalid-number", sms_with(source="+12345"), JSON, "phone number"),
    ("letters-number", sms_with(source="ACME"), JSON, "phone number"),
    ("missing-text", sms_with(body=None), JSON, "no message text"),
    ("missing-umid", sms_with(umid=None), JSON, "umid"),
    ("missing-subaccount", sms_with(subAccountId=None), JSON, "subAccountId"),
    ("bad-subaccount", sms_with(subAccountId="ACME MKT"), JSON, "subAccountId"),
    ("naive-timestamp", sms_with(timestamp="2026-03-02T09:15:27"), JSON, "offset"),
    ("garbage-timestamp", sms_with(timestamp="yesterday"), JSON, "timestamp"),
    ("numeric-timestamp", sms_with(timestamp=1772442927), JSON, "timestamp"),
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


# -- opt-outs and opt-ins --------------------------------------------------------------------
GOOD = {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "hello"}


def body_with(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


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


@pytest.mark.parametrize("path", ["/v1/opt-outs", "/v1/opt-ins"])
@pytest.mark.parametrize(
    ("body", "status"),
    [case[1:] for case in CONSENT_CASES],
    ids=[case[0] for case in CONSENT_CASES],
)
def test_consent_endpoints_refuse_bad_input_as_problems(
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
