"""Hostile input: whatever arrives, the answer is the documented one, never a 5xx, and nothing
refused reaches the log.

The webhook answers 200 ``quarantined`` for a body it cannot understand (a 4XX would only make 8x8
retry) and keeps the exact bytes; every other endpoint answers an RFC 9457 problem: 400 for a
body or parameter that is not the schema, 413 for a body over 1 MiB, 422 for values a person must
fix, 404 for what does not exist — and another tenant's numbers, subaccounts and positions look
exactly like ones that do not exist. The log head is the same before and after every refusal.
Most cases run in-process (TestClient); a few go through the real server's HTTP stack.
"""

from __future__ import annotations

import base64
import copy
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from litestar.testing import TestClient

from ledger.entries import MAX_KEPT_BYTES
from projections.ids import key_part, umid_key

from ..server_util import Server, start_server, stop_server
from .conftest import SMS_STOP, bearer, head, open_db, sms

Client = TestClient  # type: ignore[type-arg]
MiB = 1024 * 1024
NEAR_MiB = int(0.9 * MiB)
LONG_URL = 60_000
"""Characters in a path segment (httpx refuses URLs over 64 KiB)."""
SQL = "'; DROP TABLE log; --"
NUMBER = "+6581968289"
DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
STOP = sms("hostile-template", NUMBER)

MALFORMED_NUMBERS = [
    "+",
    "++6581968289",
    "65 8196 8289 ext 3",
    "+65 8196 8289;ext=3",
    "tel:+6581968289",
    "+\uff16\uff15\uff18\uff11\uff19\uff16\uff18\uff12\uff18\uff19",  # full-width digits
    "+\u0666\u0665\u0668\u0661\u0669\u0666\u0668\u0662\u0668\u0669",  # Arabic-Indic digits
    "+\u096c\u096b\u096e\u0967\u096f\u096c\u096e\u0968\u096e\u096f",  # Devanagari digits
    "1" * 40,
    "-1",
    "1e10",
    "+0",
    "0",
    "0065",
    "+65819682891234567890",
    " ",
    "+65 8196\x008289",
    "+6581968289\u200b",
    SQL,
    "9" * NEAR_MiB,
]


def sms_with(**payload: Any) -> bytes:
    """The inbound-SMS STOP fixture with ``payload`` fields replaced."""
    body = copy.deepcopy(SMS_STOP)
    body["payload"].update(payload)
    return json.dumps(body).encode()


def is_problem(r: httpx.Response, status: int | set[int]) -> None:
    """``r`` is an RFC 9457 problem with ``status`` (one of them, for a set)."""
    allowed = status if isinstance(status, set) else {status}
    assert r.status_code in allowed, r.text[:500]
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == r.status_code
    assert problem["detail"]


@pytest.fixture
def world(client: Client, keys: dict[str, str]) -> dict[str, int]:
    """Tenant ``default`` has a STOP on ACME_MKT; tenant ``other`` has a STOP and an open review
    item on OTHER_SUB, and a quarantined body. Returns the other tenant's positions."""
    other = bearer(keys["other"])
    post = client.post
    assert post("/v1/webhooks/8x8", content=STOP, headers=bearer(keys["all"])).status_code == 200
    stop = post(
        "/v1/webhooks/8x8", content=sms("o-1", NUMBER, subaccount="OTHER_SUB"), headers=other
    )
    review = post(
        "/v1/webhooks/8x8",
        content=sms("o-2", NUMBER, text="could you stop the van at gate 5", subaccount="OTHER_SUB"),
        headers=other,
    )
    assert (stop.json()["outcome"], review.json()["outcome"]) == ("opted_out", "review")
    assert post("/v1/webhooks/8x8", content=b"{", headers=other).json()["outcome"] == "quarantined"
    return {"stop": stop.json()["position"], "review": review.json()["position"]}


def log_head(client: Client) -> int:
    return head(client.app.state.services.ledger.store.path)


# -- the webhook: quarantine, never a 4XX or 5XX -------------------------------------------------
WEBHOOK_BODIES = {
    "100k-nested-arrays": DEEP_ARRAYS,
    "50k-nested-objects": DEEP_OBJECTS,
    "nested-in-the-payload": b'{"payload": {"source": "+6581968289", "body": '
    + DEEP_ARRAYS
    + b"}}",
    "truncated-early": STOP[:1],
    "truncated-mid-key": STOP[: len(STOP) // 3],
    "truncated-before-end": STOP[:-1],
    "only-a-bom": b"\xef\xbb\xbf",
    "nul-bytes": b"\x00" * 64,
    "nul-in-json": STOP.replace(b'"STOP"', b'"ST\x00OP"'),
    "invalid-utf8-lone-continuation": STOP.replace(b'"STOP"', b'"ST\x80OP"'),
    "invalid-utf8-overlong": STOP.replace(b'"STOP"', b'"\xc0\xafSTOP"'),
    "invalid-utf8-surrogate": STOP.replace(b'"STOP"', b'"\xed\xa0\x80"'),
    "nan-literal": STOP.replace(b'"smsCount": 1', b'"smsCount": NaN'),
    "number-out-of-range": STOP.replace(b'"smsCount": 1', b'"smsCount": 1e999'),
    "payload-is-a-string": b'{"eventType": "inbound_message_received", "payload": "STOP"}',
}
# Hostile ids, times and sizes around a real STOP: the STOP still counts (recorded, capped).
WEBHOOK_STOPS = {
    "huge-text": sms_with(body="STOP " + "x" * NEAR_MiB),
    "huge-umid": sms_with(umid="u" * NEAR_MiB),
    "huge-subaccount": sms_with(subAccountId="A" * NEAR_MiB),
    "huge-timestamp": sms_with(timestamp="2" * NEAR_MiB),
    "control-chars-in-subaccount": sms_with(subAccountId="ACME\x1b[31mMKT"),
    "nul-in-umid": sms_with(umid="abc\x00def"),
    "sql-subaccount": sms_with(subAccountId=SQL),
    "sql-timestamp": sms_with(timestamp=SQL),
    "umid-is-an-object": sms_with(umid={"$ne": None}),
}


@pytest.mark.parametrize("body", list(WEBHOOK_BODIES.values()), ids=list(WEBHOOK_BODIES))
def test_the_webhook_quarantines_hostile_bodies(
    client: Client, keys: dict[str, str], world: dict[str, int], body: bytes
) -> None:
    before = log_head(client)
    r = client.post(
        "/v1/webhooks/8x8",
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["all"])},
    )
    assert r.status_code == 200, r.text[:500]
    assert (r.json()["outcome"], r.json()["position"]) == ("quarantined", None)
    assert log_head(client) == before
    items = client.get("/v1/quarantine", headers=bearer(keys["all"])).json()["items"]
    kept = base64.b64decode(items[-1]["body_base64"])
    assert kept == body[:MAX_KEPT_BYTES]  # kept byte for byte, a long one as a described prefix
    assert items[-1]["length"] == (len(body) if len(body) > MAX_KEPT_BYTES else None)


@pytest.mark.parametrize("body", list(WEBHOOK_STOPS.values()), ids=list(WEBHOOK_STOPS))
def test_the_webhook_records_a_stop_among_hostile_fields(
    client: Client, keys: dict[str, str], world: dict[str, int], body: bytes
) -> None:
    before = log_head(client)
    r = client.post(
        "/v1/webhooks/8x8",
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["all"])},
    )
    assert r.status_code == 200, r.text[:500]
    assert r.json()["outcome"] in ("opted_out", "review"), r.text[:500]
    assert log_head(client) > before
    stored = client.app.state.services.ledger.store.read_from(r.json()["position"], 1)[0]
    assert len(stored.data) < 4096  # no hostile value reaches the signed entry whole


@pytest.mark.parametrize("number", MALFORMED_NUMBERS, ids=range(len(MALFORMED_NUMBERS)))
def test_the_webhook_quarantines_malformed_numbers(
    client: Client, keys: dict[str, str], world: dict[str, int], number: str
) -> None:
    before = log_head(client)
    r = client.post(
        "/v1/webhooks/8x8",
        content=sms_with(umid="bad-number", source=number),
        headers=bearer(keys["all"]),
    )
    assert r.status_code == 200
    assert r.json()["outcome"] == "quarantined", r.text[:300]
    assert log_head(client) == before


def test_sql_looking_strings_are_data(
    client: Client, keys: dict[str, str], world: dict[str, int]
) -> None:
    """A umid and a text that look like SQL are recorded verbatim; no table is touched."""
    before, tables = log_head(client), schema(client)
    body = sms_with(umid=SQL, body="STOP" + SQL, source="+6581000777")
    r = client.post("/v1/webhooks/8x8", content=body, headers=bearer(keys["all"]))
    assert r.status_code == 200
    assert (r.json()["outcome"], r.json()["position"]) == ("review", before + 1)
    again = client.post("/v1/webhooks/8x8", content=body, headers=bearer(keys["all"]))
    assert again.json()["duplicate"] is True
    [entry] = client.app.state.services.ledger.history("default", "+6581000777")
    assert entry.entry.key == umid_key(SQL)  # not a well-formed id: only its digest is signed
    assert SQL.encode() not in entry.data
    assert log_head(client) == before + 1  # the log is still there, one entry longer
    assert schema(client) == tables


def schema(client: Client) -> list[tuple[str, str]]:
    """Every table, index and trigger of the database, with its SQL."""
    conn = open_db(client.app.state.services.ledger.store.path)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_an_sql_looking_subaccount_is_an_unknown_one(
    client: Client, keys: dict[str, str], world: dict[str, int]
) -> None:
    """An opt-out naming it is kept (tenant-wide, unresolved: when in doubt, suppress) with the
    name verbatim; an opt-in naming it is refused."""
    before = log_head(client)
    auth = bearer(keys["all"])
    body = consent_body(subaccount=SQL, msisdn="+6581000778")
    is_problem(client.post("/v1/opt-ins", content=body, headers=auth), 422)
    assert log_head(client) == before
    r = client.post("/v1/opt-outs", content=body, headers=auth)
    assert r.status_code == 201, r.text
    assert (r.json()["scope"], r.json()["unresolved"]) == ("tenant", True)
    [entry] = client.app.state.services.ledger.history("default", "+6581000778")
    assert entry.entry.event.unresolved_subaccount == key_part(SQL)  # its digest, not the text


# -- opt-outs and opt-ins: 400 / 413 / 422 problems ------------------------------------------
def consent_body(**fields: Any) -> bytes:
    return json.dumps({"msisdn": NUMBER, "subaccount": "ACME_MKT", **fields}).encode()


CONSENT_BODIES: list[tuple[str, bytes, int]] = [
    ("100k-nested-arrays", DEEP_ARRAYS, 400),
    ("50k-nested-objects", DEEP_OBJECTS, 400),
    ("nested-in-a-field", b'{"msisdn": ' + DEEP_ARRAYS + b', "subaccount": "ACME_MKT"}', 400),
    ("truncated", consent_body()[:-2], 400),
    ("nul-bytes", b"\x00" * 64, 400),
    ("invalid-utf8", consent_body().replace(b"ACME_MKT", b"ACME\xffMKT"), 400),
    ("invalid-utf8-overlong", consent_body().replace(b"ACME_MKT", b"\xc0\xaf"), 400),
    ("number-out-of-range", b'{"msisdn": 1e999, "subaccount": "ACME_MKT"}', 400),
    ("5000-digit-integer", b'{"msisdn": ' + b"9" * 5000 + b', "subaccount": "ACME_MKT"}', 400),
    ("msisdn-is-an-object", consent_body(msisdn={"$gt": ""}), 400),
    ("sql-field-name", consent_body(**{SQL: 1}), 400),
    ("huge-text", consent_body(text="x" * NEAR_MiB), 422),
    ("huge-subaccount", consent_body(subaccount="A" * NEAR_MiB), 422),
    ("huge-idempotency-key", consent_body(idempotency_key="k" * NEAR_MiB), 422),
    ("huge-actor", consent_body(actor="a" * NEAR_MiB), 422),
    ("nul-in-subaccount", consent_body(subaccount="ACME\x00MKT"), 422),
    ("control-in-idempotency-key", consent_body(idempotency_key="k\x07"), 422),
    ("sql-occurred-at", consent_body(occurred_at=SQL), 422),
    ("year-0", consent_body(occurred_at="0000-01-01T00:00:00Z"), 422),
    ("year-99999", consent_body(occurred_at="99999-01-01T00:00:00Z"), 422),
    ("over-1-mib", consent_body(text="x" * MiB), 413),
]


UNREADABLE_OPT_OUTS = {
    "100k-nested-arrays",
    "50k-nested-objects",
    "nested-in-a-field",
    "truncated",
    "nul-bytes",
    "invalid-utf8",
    "invalid-utf8-overlong",
    "number-out-of-range",
    "5000-digit-integer",
    "msisdn-is-an-object",
}


@pytest.mark.parametrize(
    ("name", "body", "status"), CONSENT_BODIES, ids=[c[0] for c in CONSENT_BODIES]
)
def test_opt_outs_keep_hostile_bodies_and_record_every_stop(
    client: Client, keys: dict[str, str], world: dict[str, int], name: str, body: bytes, status: int
) -> None:
    """No STOP is refused: a body that names a usable number is recorded, any other is kept in
    the quarantine; only a body over the size limit is refused before it is read."""
    before = log_head(client)
    r = client.post(
        "/v1/opt-outs",
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["all"])},
    )
    if status == 413:
        is_problem(r, 413)
    elif name in UNREADABLE_OPT_OUTS:
        assert (r.status_code, r.json()["outcome"]) == (200, "quarantined"), r.text[:300]
        assert log_head(client) == before
    else:
        assert (r.status_code, r.json()["outcome"]) == (201, "opted_out"), r.text[:300]
        assert log_head(client) == before + 1


@pytest.mark.parametrize("path", ["/v1/opt-ins"])
@pytest.mark.parametrize(
    ("body", "status"), [c[1:] for c in CONSENT_BODIES], ids=[c[0] for c in CONSENT_BODIES]
)
def test_opt_ins_refuse_hostile_bodies(
    client: Client, keys: dict[str, str], world: dict[str, int], path: str, body: bytes, status: int
) -> None:
    before = log_head(client)
    r = client.post(
        path, content=body, headers={"Content-Type": "application/json", **bearer(keys["all"])}
    )
    is_problem(r, status)
    assert log_head(client) == before


@pytest.mark.parametrize("number", MALFORMED_NUMBERS, ids=range(len(MALFORMED_NUMBERS)))
def test_malformed_numbers_are_refused_everywhere(
    client: Client, keys: dict[str, str], world: dict[str, int], number: str
) -> None:
    before = log_head(client)
    auth = bearer(keys["all"])
    is_problem(client.post("/v1/opt-ins", content=consent_body(msisdn=number), headers=auth), 422)
    kept = client.post("/v1/opt-outs", content=consent_body(msisdn=number), headers=auth)
    assert (kept.status_code, kept.json()["outcome"]) == (200, "quarantined")
    if number.strip() and len(number) < LONG_URL:  # an empty segment is another route
        one = client.get(f"/v1/consent/ACME_MKT/{quote(number, safe='')}", headers=auth)
        is_problem(one, 422)
        audit = client.get(f"/v1/audit/ACME_MKT/{quote(number, safe='')}", headers=auth)
        is_problem(audit, 422)
    many = client.post(
        "/v1/consent/check",
        json={"subaccount": "ACME_MKT", "msisdns": [number, NUMBER]},
        headers=auth,
    )
    assert many.status_code == 200
    bad, good = many.json()["results"]
    assert (bad["allowed"], bool(bad["error"])) == (False, True)
    assert (good["allowed"], good["state"]) == (False, "opted_out")
    assert log_head(client) == before


# -- positions, sizes, times and other parameters ---------------------------------------------
BIG = 2**63
HUGE = 2**70
PARAMETERS: list[tuple[str, str, Any, int | set[int]]] = [
    ("GET", "/v1/log/proof/inclusion?position=-1", None, 400),
    ("GET", "/v1/log/proof/inclusion?position=0", None, 400),
    ("GET", f"/v1/log/proof/inclusion?position={HUGE}", None, 400),
    ("GET", f"/v1/log/proof/inclusion?position={BIG}", None, 400),
    ("GET", f"/v1/log/proof/inclusion?position={BIG - 1}", None, 404),
    ("GET", "/v1/log/proof/inclusion?position=abc", None, 400),
    ("GET", "/v1/log/proof/inclusion?position=1&tree_size=0", None, 400),
    ("GET", f"/v1/log/proof/inclusion?position=1&tree_size={HUGE}", None, 400),
    ("GET", f"/v1/log/proof/inclusion?position=1&tree_size={BIG - 1}", None, 422),
    ("GET", "/v1/log/proof/consistency?first=-1", None, 400),
    ("GET", "/v1/log/proof/consistency?first=0&second=1", None, 400),
    ("GET", f"/v1/log/proof/consistency?first=1&second={HUGE}", None, 400),
    ("GET", f"/v1/log/proof/consistency?first=1&second={BIG - 1}", None, 422),
    ("GET", "/v1/log/proof/consistency?first=2&second=1", None, 422),
    ("GET", "/v1/log/checkpoints?since=-1", None, 400),
    ("GET", f"/v1/log/checkpoints?limit={HUGE}", None, 400),
    ("GET", "/v1/quarantine?limit=0", None, 400),
    ("GET", "/v1/quarantine?limit=-1", None, 400),
    ("GET", f"/v1/quarantine?limit={HUGE}", None, 400),
    ("GET", "/v1/quarantine?after_id=-1", None, 400),
    ("GET", f"/v1/quarantine?after_id={HUGE}", None, 400),
    ("GET", "/v1/review?limit=0", None, 400),
    ("GET", f"/v1/review?limit={HUGE}", None, 400),
    ("POST", "/v1/review/-5/resolve", {"action": "dismiss", "note": "n"}, 404),
    ("POST", "/v1/review/0/resolve", {"action": "dismiss", "note": "n"}, 404),
    ("POST", f"/v1/review/{BIG}/resolve", {"action": "dismiss", "note": "n"}, {404, 422}),
    ("POST", f"/v1/review/{HUGE}/resolve", {"action": "dismiss", "note": "n"}, {404, 422}),
    ("POST", "/v1/review/1/resolve", {"action": SQL, "note": "n"}, 400),
    ("POST", "/v1/review/1/resolve", {"action": "dismiss", "note": "n" * NEAR_MiB}, 400),
    ("POST", "/v1/retractions", {"position": 0, "reason": "r"}, 400),
    ("POST", "/v1/retractions", {"position": -1, "reason": "r"}, 400),
    ("POST", "/v1/retractions", {"position": BIG - 1, "reason": "r"}, 422),
    ("POST", "/v1/retractions", {"position": BIG, "reason": "r"}, 422),
    ("POST", "/v1/retractions", {"position": HUGE, "reason": "r"}, 422),
    ("POST", "/v1/retractions", {"position": 1.5, "reason": "r"}, 400),
    ("POST", "/v1/retractions", {"position": None, "reason": "r"}, 400),
    ("POST", "/v1/retractions", {"position": 2, "reason": "r" * NEAR_MiB}, {400, 422}),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?at=-1", None, 422),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?at=1e10", None, 422),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?at=2026-02-30T00:00:00Z", None, 422),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?at=2026-03-02T09:15:27", None, 422),
    ("GET", f"/v1/consent/ACME_MKT/%2B6581968289?at={quote(SQL)}", None, 422),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?known_at=-1", None, 422),
    ("GET", "/v1/consent/ACME_MKT/%2B6581968289?known_at=%00", None, 422),
    ("GET", f"/v1/consent/{quote(SQL, safe='')}/%2B6581968289", None, 422),
    ("GET", "/v1/consent/ACME%00MKT/%2B6581968289", None, 422),
    ("GET", "/v1/consent/ACME%FFMKT/%2B6581968289", None, 422),
    ("GET", f"/v1/consent/{'A' * LONG_URL}/%2B6581968289", None, 422),
    ("GET", "/v1/audit/ACME_MKT/%2B6581968289?format=xml", None, 400),
    ("PUT", f"/v1/subaccounts/{quote(SQL, safe='')}", {}, 422),
    ("PUT", "/v1/subaccounts/A%00B", {}, 422),
    ("PUT", f"/v1/subaccounts/{'A' * 5000}", {}, 422),
    ("PUT", "/v1/subaccounts/ACME_MKT", {"mode": SQL}, 400),
    ("PUT", "/v1/tenant", {"revoke_all": "yes"}, 400),
    (
        "POST",
        "/v1/consent/check",
        {"subaccount": "ACME_MKT", "msisdns": [NUMBER] * 10_001},
        422,
    ),
    ("POST", "/v1/consent/check", {"subaccount": "ACME_MKT", "msisdns": [NUMBER, 5]}, 400),
    ("POST", "/v1/consent/check", {"subaccount": SQL, "msisdns": [NUMBER]}, 422),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    PARAMETERS,
    ids=[f"{m} {u[:70]}" for m, u, *_ in PARAMETERS],
)
def test_hostile_parameters_get_their_documented_4xx(
    client: Client,
    keys: dict[str, str],
    world: dict[str, int],
    method: str,
    url: str,
    body: Any,
    status: int | set[int],
) -> None:
    before = log_head(client)
    r = client.request(method, url, json=body, headers=bearer(keys["all"]))
    is_problem(r, status)
    assert log_head(client) == before


def test_operator_log_reads_refuse_hostile_sizes(client: Client, keys: dict[str, str]) -> None:
    before = log_head(client)
    auth = bearer(keys["operator"])
    for query in ("start=-1", "start=0", f"start={HUGE}", "limit=0", f"limit={HUGE}", "limit=x"):
        is_problem(client.get(f"/v1/log/entries?{query}", headers=auth), 400)
    assert client.get(f"/v1/log/entries?start={BIG - 1}", headers=auth).json() == []
    assert log_head(client) == before


# -- another tenant's ids look like ids that do not exist -------------------------------------
def same_refusal(a: httpx.Response, b: httpx.Response, a_id: int, b_id: int) -> None:
    """Both answers are the same problem, apart from the id they name."""
    assert a.status_code == b.status_code
    assert a.json()["detail"].replace(str(a_id), "N") == b.json()["detail"].replace(str(b_id), "N")


def test_another_tenants_positions_look_absent(
    client: Client, keys: dict[str, str], world: dict[str, int]
) -> None:
    before = log_head(client)
    auth = bearer(keys["all"])
    absent = before + 1000
    for theirs in (world["stop"], world["review"]):
        a = client.post("/v1/retractions", json={"position": theirs, "reason": "r"}, headers=auth)
        b = client.post("/v1/retractions", json={"position": absent, "reason": "r"}, headers=auth)
        is_problem(a, 422)
        same_refusal(a, b, theirs, absent)
        a = client.get(f"/v1/log/proof/inclusion?position={theirs}", headers=auth)
        b = client.get(f"/v1/log/proof/inclusion?position={absent}", headers=auth)
        is_problem(a, 404)
        same_refusal(a, b, theirs, absent)
    resolve = {"action": "dismiss", "note": "not ours"}
    a = client.post(f"/v1/review/{world['review']}/resolve", json=resolve, headers=auth)
    b = client.post(f"/v1/review/{absent}/resolve", json=resolve, headers=auth)
    is_problem(a, 404)
    same_refusal(a, b, world["review"], absent)
    assert log_head(client) == before


def test_another_tenants_subaccounts_numbers_and_quarantine_look_absent(
    client: Client, keys: dict[str, str], world: dict[str, int]
) -> None:
    before = log_head(client)
    auth = bearer(keys["all"])
    theirs = client.get(f"/v1/consent/OTHER_SUB/{quote(NUMBER)}", headers=auth).json()
    never = client.get(f"/v1/consent/NEVER_SEEN/{quote(NUMBER)}", headers=auth).json()
    assert (theirs["allowed"], theirs["state"], theirs["subaccount_known"]) == (
        never["allowed"],
        never["state"],
        never["subaccount_known"],
    )
    assert theirs["decided_by"] is None
    audit = client.get(f"/v1/audit/OTHER_SUB/{quote(NUMBER)}", headers=auth).json()
    assert (audit["entries"], audit["configuration"]) == ([], [])
    assert client.get("/v1/quarantine", headers=auth).json()["items"] == []
    assert client.get("/v1/review", headers=auth).json()["items"] == []
    subaccounts = client.get("/v1/subaccounts", headers=auth).text
    assert "OTHER_SUB" not in subaccounts
    many = client.post(
        "/v1/consent/check", json={"subaccount": "OTHER_SUB", "msisdns": [NUMBER]}, headers=auth
    ).json()
    assert many["results"][0]["state"] == never["state"]
    assert log_head(client) == before


# -- credentials ------------------------------------------------------------------------------
AUTHORIZATIONS: list[str | bytes] = [
    "Basic éééé".encode(),  # not ASCII (was a 500)
    "Bearer é".encode(),
    "Basic " + base64.b64encode(b"8x8:\xff\xfe").decode(),  # a password that is not UTF-8
    "Bearer \x00\x01",
    "Bearer " + "a" * 60_000,
    "Bearer cl_000000000000_" + SQL,
    "Basic ####",
    "Basic /w==",
    "Basic " + base64.b64encode(b"8x8:" + SQL.encode()).decode(),
    "Bearer",
    "",
]


@pytest.mark.parametrize("authorization", AUTHORIZATIONS, ids=range(len(AUTHORIZATIONS)))
def test_hostile_credentials_are_401(
    client: Client, world: dict[str, int], authorization: str | bytes
) -> None:
    before = log_head(client)
    for method, url in (("POST", "/v1/webhooks/8x8"), ("GET", "/v1/review")):
        r = client.request(method, url, content=STOP, headers={"Authorization": authorization})
        is_problem(r, 401)
    assert log_head(client) == before


# -- through the real server's HTTP stack (slow) ----------------------------------------------
@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("hostile"), workers=2)
    assert running.key is not None
    with httpx.Client(base_url=running.url, headers=bearer(running.key)) as http:
        assert http.post("/v1/webhooks/8x8", content=STOP).status_code == 200
    yield running
    stop_server(running)


def raw_request(server: Server, data: bytes) -> bytes:
    """Send ``data`` on a fresh TCP connection; return what comes back (until close or 5 s)."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.slow
def test_the_real_server_refuses_hostile_requests_without_a_5xx(real: Server) -> None:
    assert real.key is not None
    before = head(real.db)
    auth = bearer(real.key)
    with httpx.Client(base_url=real.url, headers=auth, timeout=30) as http:
        deep = http.post("/v1/webhooks/8x8", content=DEEP_ARRAYS)
        assert (deep.status_code, deep.json()["outcome"]) == (200, "quarantined")
        for unreadable in (DEEP_OBJECTS, consent_body().replace(b"_", b"\xff")):
            kept = http.post("/v1/opt-outs", content=unreadable)
            assert (kept.status_code, kept.json()["outcome"]) == (200, "quarantined")
        long_text = http.post("/v1/opt-outs", content=consent_body(text="x" * NEAR_MiB))
        assert long_text.status_code == 201  # an opt-out is never refused for its text
        huge = http.post("/v1/webhooks/8x8", content=sms_with(body="STOP " + "x" * NEAR_MiB))
        assert huge.json()["outcome"] == "review"  # kept, capped, for a person to judge
        is_problem(http.post("/v1/webhooks/8x8", content=b"{" + b" " * MiB + b"}"), 413)
        chunked = http.post("/v1/opt-outs", content=iter([b"{"] + [b" " * 65536] * 20 + [b"}"]))
        is_problem(chunked, 413)
        is_problem(http.get(f"/v1/log/proof/inclusion?position={HUGE}"), 400)
        is_problem(http.post(f"/v1/review/{HUGE}/resolve", json={"action": "dismiss"}), 400)
        is_problem(http.post("/v1/retractions", json={"position": BIG, "reason": "r"}), 422)
        long_path = http.get(f"/v1/consent/{'A' * LONG_URL}/{quote(NUMBER)}")
        assert 400 <= long_path.status_code < 500
    for data in (
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 200_000 + b"\r\n\r\n",
        b"POST /v1/opt-outs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        b"POST /v1/opt-outs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        answer = raw_request(real, data)
        assert status_of(answer) < 500, answer[:200]  # 4xx, closed, or 200 for a long header
    before += 2  # the long opt-out and the long STOP above
    assert httpx.get(real.url + "/readyz").status_code == 200  # still serving
    assert head(real.db) == before
    assert "unhandled_exception" not in real.log()
