"""'May I send?' over HTTP: one number (GET /v1/consent/…) and bulk (POST /v1/consent/check)."""

from __future__ import annotations

from typing import Any

import pytest

from api import metrics

from .conftest import (
    ENCODED,
    MSISDN,
    STOP_AT,
    Client,
    bearer,
    fixture_body,
    fixture_json,
    head,
    webhook,
)


def sms(
    text: str,
    umid: str,
    *,
    subaccount: str = "ACME_MKT",
    source: str = MSISDN,
    timestamp: str = STOP_AT,
) -> dict[str, Any]:
    body = fixture_json("inbound-sms-stop.json")
    payload: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    payload.update(
        umid=umid, body=text, subAccountId=subaccount, source=source, timestamp=timestamp
    )
    return body


def check(
    client: Client,
    keys: dict[str, str],
    subaccount: str,
    msisdn: str,
    key: str = "check",
    **query: str,
) -> Any:
    return client.get(f"/v1/consent/{subaccount}/{msisdn}", params=query, headers=bearer(keys[key]))


def bulk(client: Client, keys: dict[str, str], body: dict[str, Any], key: str = "check") -> Any:
    return client.post("/v1/consent/check", json=body, headers=bearer(keys[key]))


def configure(client: Client, keys: dict[str, str], subaccount: str, **settings: Any) -> None:
    r = client.put(f"/v1/subaccounts/{subaccount}", json=settings, headers=bearer(keys["admin"]))
    assert r.status_code == 200, r.text


# -- single check ----------------------------------------------------------------------------


def test_single_check_follows_stop_then_start(client: Client, keys: dict[str, str]) -> None:
    before = check(client, keys, "ACME_MKT", ENCODED)
    assert before.status_code == 200
    assert before.json() | {"at": None} == {
        "allowed": True,
        "state": "unknown",
        "msisdn": MSISDN,
        "subaccount": "ACME_MKT",
        "subaccount_known": False,
        "reason": before.json()["reason"],
        "decided_by": None,
        "at": None,
        "known_at": None,
        "log_position": 0,
        "known_at_note": None,
    }

    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    after_stop = check(client, keys, "ACME_MKT", ENCODED).json()
    assert after_stop["allowed"] is False
    assert after_stop["state"] == "opted_out"
    assert after_stop["subaccount_known"] is True
    assert after_stop["decided_by"]["position"] == stop["position"]
    assert after_stop["decided_by"]["keyword"] == "STOP"
    assert after_stop["decided_by"]["type"] == "consent.revoked"
    assert after_stop["decided_by"]["occurred_at"] == STOP_AT
    assert after_stop["log_position"] == head(client)
    assert "opted out by STOP" in after_stop["reason"]

    start = webhook(client, keys, fixture_body("inbound-sms-start.json"))
    after_start = check(client, keys, "ACME_MKT", ENCODED).json()
    assert after_start["allowed"] is True
    assert after_start["state"] == "opted_in"
    assert after_start["decided_by"]["position"] == start["position"]
    assert after_start["decided_by"]["keyword"] == "START"


def test_stop_on_one_subaccount_leaves_another_alone(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    other = check(client, keys, "ACME_CARE", ENCODED).json()
    assert other["state"] == "unknown"
    assert other["allowed"] is True


def test_messaging_apps_stop_suppresses_its_subaccount(
    client: Client, keys: dict[str, str]
) -> None:
    answer = webhook(client, keys, fixture_body("inbound-chatapps-stop.json"))
    care = check(client, keys, "ACME_CARE", "%2B6591234567").json()
    assert care["state"] == "opted_out"
    assert care["decided_by"]["position"] == answer["position"]
    assert check(client, keys, "ACME_MKT", "%2B6591234567").json()["state"] == "unknown"


@pytest.mark.parametrize(
    "written", [ENCODED, "+6581968289", "006581968289", "%2B65%208196%208289", "%2B65-8196-8289"]
)
def test_every_international_form_names_the_same_number(
    client: Client, keys: dict[str, str], written: str
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    answer = check(client, keys, "ACME_MKT", written)
    assert answer.status_code == 200, answer.text
    assert answer.json()["msisdn"] == MSISDN
    assert answer.json()["state"] == "opted_out"


def test_national_digits_read_in_the_subaccount_region(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    without_region = check(client, keys, "ACME_MKT", "81968289")
    assert without_region.status_code == 422
    assert without_region.headers["content-type"].startswith("application/problem+json")

    configure(client, keys, "ACME_MKT", default_region="SG")
    answer = check(client, keys, "ACME_MKT", "8196 8289")
    assert answer.status_code == 200
    assert answer.json()["msisdn"] == MSISDN
    assert answer.json()["state"] == "opted_out"


def test_point_in_time_by_valid_time(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    webhook(client, keys, fixture_body("inbound-sms-start.json"))
    states = {
        at: check(client, keys, "ACME_MKT", ENCODED, at=at).json()
        for at in ("2026-03-01", STOP_AT, "2026-03-03T08:00:00+08:00", "2026-04-12")
    }
    assert states["2026-03-01"]["state"] == "unknown"
    assert states["2026-03-01"]["at"] == "2026-03-01T00:00:00.000Z"
    assert states[STOP_AT]["state"] == "opted_out"  # an entry applies from its occurred time
    assert states["2026-03-03T08:00:00+08:00"]["state"] == "opted_out"
    assert states["2026-03-03T08:00:00+08:00"]["at"] == "2026-03-03T00:00:00.000Z"
    assert states["2026-04-12"]["state"] == "opted_in"


def test_point_in_time_by_known_at(client: Client, keys: dict[str, str]) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    webhook(client, keys, fixture_body("inbound-sms-start.json"))
    as_known_then = check(client, keys, "ACME_MKT", ENCODED, known_at=str(stop["position"]))
    assert as_known_then.json()["state"] == "opted_out"
    assert as_known_then.json()["known_at"] == stop["position"]
    assert as_known_then.json()["log_position"] == stop["position"]

    before_anything = check(client, keys, "ACME_MKT", ENCODED, known_at="2000-01-01T00:00:00Z")
    assert before_anything.json()["state"] == "unknown"
    assert before_anything.json()["known_at"] == "2000-01-01T00:00:00.000Z"
    assert before_anything.json()["log_position"] == 0

    far = check(client, keys, "ACME_MKT", ENCODED, known_at="2999-01-01T00:00:00Z")
    assert far.json()["state"] == "opted_in"
    assert far.json()["log_position"] == head(client)
    assert far.json()["known_at"] == "2999-01-01T00:00:00.000Z"
    assert "in the future; answered as known now" in far.json()["known_at_note"]
    assert as_known_then.json()["known_at_note"] is None
    now = check(client, keys, "ACME_MKT", ENCODED, known_at=str(head(client)))
    assert (now.json()["log_position"], now.json()["known_at_note"]) == (head(client), None)


def test_known_at_beyond_the_log_head_is_422(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    beyond = check(client, keys, "ACME_MKT", ENCODED, known_at=str(head(client) + 1))
    assert beyond.status_code == 422
    assert beyond.json()["type"].endswith("/invalid-input")
    assert f"the newest is {head(client)}" in beyond.json()["detail"]


@pytest.mark.parametrize(
    "known_at",
    [
        "9" * 4301,  # past Python's int() digit limit: was a 500
        "9" * 19,  # past the 18 digits of a position
        "²",  # str.isdigit() is true for it; int() refuses it
        "١٢",  # Arabic-Indic digits: not a position
        "+5",
        "1_000",
    ],
)
def test_known_at_that_is_no_position_nor_time_is_422(
    client: Client, keys: dict[str, str], known_at: str
) -> None:
    r = check(client, keys, "ACME_MKT", ENCODED, known_at=known_at)
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/invalid-input")
    assert len(r.json()["detail"]) < 200  # a long input is not echoed whole


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"at": "2026-03-02T09:15:27"}, "offset"),
        ({"at": "yesterday"}, "RFC 3339"),
        ({"known_at": "2026-03-02 09:15"}, "offset"),
        ({"known_at": "-1"}, "RFC 3339"),
    ],
)
def test_bad_times_are_422(
    client: Client, keys: dict[str, str], query: dict[str, str], fragment: str
) -> None:
    r = check(client, keys, "ACME_MKT", ENCODED, **query)
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


@pytest.mark.parametrize("bad", ["12", "not-a-number", "%2B99999999999", "65819682891234567890"])
def test_invalid_number_is_422(client: Client, keys: dict[str, str], bad: str) -> None:
    r = check(client, keys, "ACME_MKT", bad)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/invalid-input")


def test_malformed_subaccount_is_422(client: Client, keys: dict[str, str]) -> None:
    assert check(client, keys, "bad%20name", ENCODED).status_code == 422


def test_unknown_subaccount_is_answered_with_tenant_wide_entries(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, sms("STOP ALL", "u-stopall"))
    answer = check(client, keys, "NEVER_SEEN", ENCODED).json()
    assert answer["subaccount_known"] is False
    assert answer["state"] == "opted_out"
    assert answer["allowed"] is False
    assert "every subaccount" in answer["reason"]


def test_decisions_are_counted_by_outcome(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    counter = metrics.DECISIONS
    allowed, suppressed = (counter.labels(o)._value.get() for o in ("allowed", "suppressed"))
    check(client, keys, "ACME_MKT", ENCODED)
    check(client, keys, "ACME_CARE", ENCODED)
    bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": [MSISDN, "+6591234567", "x"]})
    assert counter.labels("allowed")._value.get() == allowed + 2
    assert counter.labels("suppressed")._value.get() == suppressed + 2


# -- bulk ------------------------------------------------------------------------------------


def test_bulk_results_in_input_order_with_per_item_errors(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    configure(client, keys, "ACME_MKT", default_region="SG")
    inputs = [
        "91234567",
        MSISDN,
        "not-a-number",
        "",
        "0065 8196 8289",
        "+1",
        "81968289",
        "+6591234567",
        "１２３",
    ]
    r = bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": inputs})
    assert r.status_code == 200, r.text
    body = r.json()
    results = body["results"]
    assert [x["input"] for x in results] == inputs
    assert [x["msisdn"] for x in results] == [
        "+6591234567",
        MSISDN,
        None,
        None,
        MSISDN,
        None,
        MSISDN,
        "+6591234567",
        None,
    ]
    assert [x["state"] for x in results] == [
        "unknown",
        "opted_out",
        None,
        None,
        "opted_out",
        None,
        "opted_out",
        "unknown",
        None,
    ]
    assert [x["allowed"] for x in results] == [
        True,
        False,
        False,
        False,
        False,
        False,
        False,
        True,
        False,
    ]
    for x in results:
        assert (x["error"] is None) == (x["msisdn"] is not None)
    assert "letters" in results[2]["error"]
    assert body["counts"] == {"allowed": 2, "suppressed": 3, "invalid": 4}
    assert body["log_position"] == head(client)
    assert body["subaccount_known"] is True


def test_bulk_invalid_input_is_never_allowed_even_when_unknown_numbers_are(
    client: Client, keys: dict[str, str]
) -> None:
    r = bulk(client, keys, {"subaccount": "NEW_ONE", "msisdns": ["+6591234567", "abc", "+0"]})
    body = r.json()
    assert [x["allowed"] for x in body["results"]] == [True, False, False]
    assert body["subaccount_known"] is False
    assert body["counts"] == {"allowed": 1, "suppressed": 0, "invalid": 2}


def test_bulk_at_a_valid_time(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    webhook(client, keys, fixture_body("inbound-sms-start.json"))
    states = [
        bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": [MSISDN], "at": at}).json()[
            "results"
        ][0]["state"]
        for at in ("2026-03-01", "2026-03-03", "2026-05-01T00:00:00+02:00")
    ]
    assert states == ["unknown", "opted_out", "opted_in"]
    naive = bulk(
        client, keys, {"subaccount": "ACME_MKT", "msisdns": [MSISDN], "at": "2026-03-03T00:00:00"}
    )
    assert naive.status_code == 422


def test_bulk_empty_list(client: Client, keys: dict[str, str]) -> None:
    body = bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": []}).json()
    assert body["results"] == []
    assert body["counts"] == {"allowed": 0, "suppressed": 0, "invalid": 0}


def test_bulk_limit(client: Client, keys: dict[str, str]) -> None:
    at_limit = [f"+65{8 + i % 2}{i:07d}" for i in range(10_000)]
    ok = bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": at_limit})
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 10_000

    over = bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": [*at_limit, MSISDN]})
    assert over.status_code == 422
    assert "10000" in over.json()["detail"]
    assert over.json()["limit"] == 10_000


def test_bulk_body_over_one_mebibyte_is_413(client: Client, keys: dict[str, str]) -> None:
    body = {"subaccount": "ACME_MKT", "msisdns": ["+6591234567" + " " * 120] * 9_000}
    r = bulk(client, keys, body)
    assert r.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"subaccount": "ACME_MKT", "msisdns": [MSISDN], "extra": 1},
        {"subaccount": "ACME_MKT"},
        {"subaccount": "ACME_MKT", "msisdns": [6581968289]},
        {"subaccount": "ACME_MKT", "msisdns": MSISDN},
    ],
)
def test_bulk_malformed_body_is_400(
    client: Client, keys: dict[str, str], body: dict[str, Any]
) -> None:
    r = bulk(client, keys, body)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("ingest", 403),
        ("audit", 403),
        ("admin", 403),
        ("operator", 403),
        ("revoked", 401),
        ("none", 401),
    ],
)
def test_check_routes_need_a_tenant_check_key(
    client: Client, keys: dict[str, str], key: str, status: int
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    before = head(client)
    assert check(client, keys, "ACME_MKT", ENCODED, key=key).status_code == status
    assert (
        bulk(client, keys, {"subaccount": "ACME_MKT", "msisdns": [MSISDN]}, key=key).status_code
        == status
    )
    assert client.get(f"/v1/consent/ACME_MKT/{ENCODED}").status_code == 401
    assert head(client) == before


def test_another_tenant_sees_nothing(client: Client, keys: dict[str, str]) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    theirs = check(client, keys, "ACME_MKT", ENCODED, key="other").json()
    assert theirs["state"] == "unknown"
    assert theirs["subaccount_known"] is False
    assert theirs["decided_by"] is None
    bulk_theirs = bulk(
        client, keys, {"subaccount": "ACME_MKT", "msisdns": [MSISDN]}, key="other"
    ).json()
    assert bulk_theirs["results"][0]["state"] == "unknown"
    assert bulk_theirs["subaccount_known"] is False
