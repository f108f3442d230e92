"""Administration over HTTP: review resolution, subaccounts, tenant settings, retractions."""

from __future__ import annotations

from typing import Any

import pytest

from api.settings import Settings
from api.signing import signer_for
from projections.bundle_verify import verify_bundle

from .conftest import (
    ENCODED,
    STOP_AT,
    Client,
    bearer,
    fixture_body,
    head,
    sms,
    webhook,
)


def state(client: Client, keys: dict[str, str], subaccount: str, **query: str) -> dict[str, Any]:
    r = client.get(
        f"/v1/consent/{subaccount}/{ENCODED}", params=query, headers=bearer(keys["check"])
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def admin(
    client: Client, keys: dict[str, str], method: str, path: str, body: Any, key: str = "admin"
) -> Any:
    return client.request(method, path, json=body, headers=bearer(keys[key]))


def resolve(
    client: Client, keys: dict[str, str], position: int, key: str = "admin", **body: Any
) -> Any:
    return admin(client, keys, "POST", f"/v1/review/{position}/resolve", body, key=key)


def flagged(client: Client, keys: dict[str, str], umid: str = "u-flag") -> int:
    answer = webhook(client, keys, sms("can you stop the delivery at 5?", umid))
    assert answer["outcome"] == "review"
    return int(answer["position"])


def unresolved(client: Client, keys: dict[str, str]) -> int:
    r = client.post(
        "/v1/opt-outs",
        content=fixture_body("automation-builder-tutorial-body.json"),
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["unresolved"] is True
    return int(r.json()["position"])


def register(client: Client, keys: dict[str, str], *names: str) -> None:
    for name in names:
        r = admin(client, keys, "PUT", f"/v1/subaccounts/{name}", {})
        assert r.status_code == 200, r.text


def queue(client: Client, keys: dict[str, str]) -> list[int]:
    r = client.get("/v1/review", headers=bearer(keys["audit"]))
    return [i["position"] for i in r.json()["items"]]


# -- review resolution -----------------------------------------------------------------------


def test_dismiss_closes_the_item_and_changes_no_consent(
    client: Client, keys: dict[str, str]
) -> None:
    item = flagged(client, keys)
    r = resolve(client, keys, item, action="dismiss", note="about a parcel, not the texts")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["opt_out_position"] is None
    assert body["resolution_position"] == head(client)
    assert queue(client, keys) == []
    assert state(client, keys, "ACME_MKT")["state"] == "unknown"
    entries = client.get(f"/v1/audit/ACME_MKT/{ENCODED}", headers=bearer(keys["audit"])).json()[
        "entries"
    ]
    assert [(e["type"], e["target"]) for e in entries] == [
        ("review.flagged", None),
        ("review.resolved", item),
    ]
    assert entries[1]["detail"] == "dismiss: about a parcel, not the texts"


def test_opt_out_revokes_from_when_the_person_wrote(client: Client, keys: dict[str, str]) -> None:
    item = flagged(client, keys)
    r = resolve(client, keys, item, action="opt_out", note="reads as a STOP in context")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subaccount"] == "ACME_MKT"
    assert body["resolution_position"] == body["opt_out_position"] + 1 == head(client)
    decision = state(client, keys, "ACME_MKT")
    assert decision["state"] == "opted_out"
    assert decision["decided_by"]["position"] == body["opt_out_position"]
    assert decision["decided_by"]["occurred_at"] == STOP_AT
    assert state(client, keys, "ACME_MKT", at="2026-03-02T09:15:27.000Z")["state"] == "unknown"
    entry = client.app.state.services.ledger.store.read_positions([body["opt_out_position"]])[
        0
    ].entry
    assert entry.event.method == "admin"
    assert entry.event.actor == "key:" + keys["admin"].split("_")[1]
    assert entry.event.resolves == item
    assert queue(client, keys) == []


def test_opt_out_onto_another_subaccount(client: Client, keys: dict[str, str]) -> None:
    register(client, keys, "ACME_CARE")
    item = flagged(client, keys)
    r = resolve(client, keys, item, action="opt_out", subaccount="ACME_CARE", note="care line")
    assert r.status_code == 200, r.text
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"
    assert state(client, keys, "ACME_MKT")["state"] == "unknown"


def test_assign_keeps_the_tenant_wide_opt_out_until_it_is_retracted(
    client: Client, keys: dict[str, str]
) -> None:
    register(client, keys, "ACME_MKT", "ACME_CARE")
    item = unresolved(client, keys)
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"  # when in doubt, suppress

    r = resolve(
        client,
        keys,
        item,
        action="assign",
        subaccount="ACME_MKT",
        note="the ACME_MKT workflow used the tutorial body",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert any("/v1/retractions" in n for n in body["notes"])
    assert queue(client, keys) == []
    mkt = state(client, keys, "ACME_MKT")
    assert mkt["decided_by"]["position"] == body["opt_out_position"]
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"  # still tenant-wide

    retract = admin(
        client,
        keys,
        "POST",
        "/v1/retractions",
        {"position": item, "reason": "assigned to ACME_MKT by review"},
    )
    assert retract.status_code == 201, retract.text
    assert state(client, keys, "ACME_CARE")["state"] == "unknown"
    assert state(client, keys, "ACME_MKT")["state"] == "opted_out"


def opt_out_unresolved(client: Client, keys: dict[str, str], text: str, umid: str) -> int:
    """An opt-out naming a subaccount nobody registered: applied tenant-wide, unresolved."""
    r = client.post(
        "/v1/opt-outs",
        json={"msisdn": "+6581968289", "subaccount": "NOT_REGISTERED", "text": text, "umid": umid},
        headers=bearer(keys["ingest"]),
    )
    assert r.status_code == 201, r.text
    assert r.json()["unresolved"] is True
    assert r.json()["scope"] == "tenant"
    return int(r.json()["position"])


def entries_from(client: Client, position: int) -> list[Any]:
    store = client.app.state.services.ledger.store
    return [s.entry for s in store.read_from(position, 100)]


def test_assign_with_narrow_lifts_the_tenant_wide_opt_out_in_the_same_step(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    register(client, keys, "ACME_MKT", "ACME_CARE")
    item = unresolved(client, keys)
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"
    before = head(client)

    r = resolve(
        client,
        keys,
        item,
        action="assign",
        subaccount="ACME_MKT",
        narrow=True,
        note="the ACME_MKT workflow used the tutorial body",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["opt_out_position"] == before + 1
    assert body["resolution_position"] == before + 2
    assert body["retraction_position"] == before + 3 == head(client)
    assert any("retracted in the same step" in n for n in body["notes"])
    assert not any("/v1/retractions" in n for n in body["notes"])
    written = entries_from(client, before + 1)
    assert [e.type for e in written] == ["consent.revoked", "review.resolved", "entry.retracted"]
    assert len({e.recorded_at for e in written}) == 1  # one append
    assert written[2].event.position == item
    assert "narrowed to subaccount 'ACME_MKT'" in written[2].event.reason
    assert queue(client, keys) == []

    mkt = state(client, keys, "ACME_MKT")
    assert mkt["state"] == "opted_out"
    assert mkt["decided_by"]["position"] == body["opt_out_position"]
    assert mkt["decided_by"]["occurred_at"] == entries_from(client, item)[0].occurred_at
    care = state(client, keys, "ACME_CARE")
    assert care["state"] == "unknown"
    assert care["allowed"] is True  # allowed again, after the explicit narrow only
    # as known before the resolution the opt-out was tenant-wide: the past is unchanged
    assert state(client, keys, "ACME_CARE", known_at=str(before))["state"] == "opted_out"
    # and an offline verifier, folding the bundle's entries itself, comes to the same answer
    bundle = client.get(f"/v1/evidence/ACME_CARE/{ENCODED}", headers=bearer(keys["audit"]))
    assert bundle.status_code == 200, bundle.text
    verified = verify_bundle(bundle.content, signer_for(settings).verifier_key)
    assert verified.state == "unknown"
    assert {e["position"] for e in bundle.json()["entries"]} >= {item, before + 3}


def test_assign_without_narrow_writes_no_retraction(client: Client, keys: dict[str, str]) -> None:
    register(client, keys, "ACME_MKT", "ACME_CARE")
    item = unresolved(client, keys)
    r = resolve(client, keys, item, action="assign", subaccount="ACME_MKT", note="mkt")
    assert r.status_code == 200, r.text
    assert r.json()["retraction_position"] is None
    assert r.json()["resolution_position"] == head(client)
    assert state(client, keys, "ACME_MKT")["state"] == "opted_out"
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"


@pytest.mark.parametrize("text", ["STOPALL", "stop all please"])
def test_a_stopall_is_never_narrowed(client: Client, keys: dict[str, str], text: str) -> None:
    register(client, keys, "ACME_MKT", "ACME_CARE")
    item = opt_out_unresolved(client, keys, text, "u-stopall")
    before = head(client)
    refused = resolve(
        client, keys, item, action="assign", subaccount="ACME_MKT", narrow=True, note="mkt"
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "by its keyword" in refused.json()["detail"]
    assert head(client) == before
    assert queue(client, keys) == [item]

    r = resolve(client, keys, item, action="assign", subaccount="ACME_MKT", note="mkt")
    assert r.status_code == 200, r.text  # assign without narrow: as ever
    assert state(client, keys, "ACME_MKT")["decided_by"]["position"] == r.json()["opt_out_position"]
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"


@pytest.mark.parametrize("when", ["received", "now"])
def test_an_opt_out_under_revoke_all_is_never_narrowed(
    client: Client, keys: dict[str, str], when: str
) -> None:
    register(client, keys, "ACME_MKT", "ACME_CARE")
    tenant = {"revoke_all": True}
    if when == "received":
        assert admin(client, keys, "PUT", "/v1/tenant", tenant).status_code == 200
    item = opt_out_unresolved(client, keys, "STOP", "u-revoke-all")
    if when == "received":
        tenant = {"revoke_all": False}  # turned off since: the opt-out keeps its scope
    assert admin(client, keys, "PUT", "/v1/tenant", tenant).status_code == 200
    before = head(client)
    refused = resolve(
        client, keys, item, action="assign", subaccount="ACME_MKT", narrow=True, note="mkt"
    )
    assert refused.status_code == 422, refused.text
    assert "revoke_all" in refused.json()["detail"]
    assert head(client) == before
    assert queue(client, keys) == [item]
    assert state(client, keys, "ACME_CARE")["state"] == "opted_out"


def test_dismissing_an_unresolved_opt_out_does_not_lift_it(
    client: Client, keys: dict[str, str]
) -> None:
    item = unresolved(client, keys)
    r = resolve(client, keys, item, action="dismiss", note="known; fixing the workflow")
    assert r.status_code == 200
    assert "stays in force" in r.json()["notes"][0]
    assert state(client, keys, "ANY_SUBACCOUNT")["state"] == "opted_out"


@pytest.mark.parametrize(
    ("kind", "body", "status"),
    [
        ("flagged", {"action": "assign", "subaccount": "ACME_MKT", "note": "x"}, 422),
        ("unresolved", {"action": "assign", "note": "x"}, 422),
        ("unresolved", {"action": "opt_out", "note": "x"}, 422),
        ("unresolved", {"action": "assign", "subaccount": "NOT_REGISTERED", "note": "x"}, 422),
        ("unresolved", {"action": "assign", "subaccount": "bad name!", "note": "x"}, 422),
        ("flagged", {"action": "dismiss", "subaccount": "ACME_MKT", "note": "x"}, 422),
        ("flagged", {"action": "dismiss", "note": "   "}, 422),
        ("flagged", {"action": "dismiss"}, 400),
        ("flagged", {"action": "delete", "note": "x"}, 400),
        ("flagged", {"action": "dismiss", "note": "x", "extra": True}, 400),
        ("flagged", {"action": "opt_out", "note": "x", "narrow": True}, 422),
        ("unresolved", {"action": "dismiss", "note": "x", "narrow": True}, 422),
        ("unresolved", {"action": "assign", "note": "x", "narrow": True}, 422),
        (
            "unresolved",
            {"action": "assign", "subaccount": "ACME_MKT", "note": "x", "narrow": "maybe"},
            400,
        ),
    ],
)
def test_refused_resolutions_write_nothing(
    client: Client, keys: dict[str, str], kind: str, body: dict[str, Any], status: int
) -> None:
    register(client, keys, "ACME_MKT")
    item = flagged(client, keys) if kind == "flagged" else unresolved(client, keys)
    before = head(client)
    r = resolve(client, keys, item, **body)
    assert r.status_code == status, r.text
    assert head(client) == before
    assert queue(client, keys) == [item]


def test_resolving_twice_is_409(client: Client, keys: dict[str, str]) -> None:
    item = flagged(client, keys)
    assert resolve(client, keys, item, action="dismiss", note="no").status_code == 200
    before = head(client)
    again = resolve(client, keys, item, action="opt_out", note="changed my mind")
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-resolved")
    assert head(client) == before


def test_resolving_what_is_not_an_open_item_is_404(client: Client, keys: dict[str, str]) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    item = flagged(client, keys)
    before = head(client)
    assert resolve(client, keys, stop["position"], action="dismiss", note="x").status_code == 404
    assert resolve(client, keys, 9999, action="dismiss", note="x").status_code == 404
    other = resolve(client, keys, item, key="other", action="dismiss", note="x")
    assert other.status_code == 404
    assert head(client) == before


@pytest.mark.parametrize("key", ["audit", "check", "ingest", "operator"])
def test_resolution_needs_an_admin_key(client: Client, keys: dict[str, str], key: str) -> None:
    item = flagged(client, keys)
    before = head(client)
    assert resolve(client, keys, item, key=key, action="dismiss", note="x").status_code == 403
    assert head(client) == before


# -- subaccounts -----------------------------------------------------------------------------


def test_configure_a_subaccount(client: Client, keys: dict[str, str]) -> None:
    r = admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"default_region": "sg"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["default_region"] == "SG"
    assert first["policy"] == "ACME_MKT@1"
    assert first["mode"] == "standard"
    assert first["unknown"] == "allow"
    assert first["changed"] is True
    assert first["position"] == head(client)
    assert "STOP" in first["effective_keywords"]["opt_out"]

    r = admin(
        client,
        keys,
        "PUT",
        "/v1/subaccounts/ACME_MKT",
        {
            "mode": "conservative",
            "keywords": {"add": {"opt_out": ["unsub"]}, "remove": {"opt_out": ["BAJA"]}},
        },
    )
    second = r.json()
    assert second["policy"] == "ACME_MKT@2"
    assert second["default_region"] == "SG"  # kept
    assert second["mode"] == "conservative"
    assert "UNSUB" in second["effective_keywords"]["opt_out"]
    assert "BAJA" not in second["effective_keywords"]["opt_out"]
    assert second["keywords"] == {"add": {"opt_out": ["UNSUB"]}, "remove": {"opt_out": ["BAJA"]}}

    answer = webhook(client, keys, sms("unsub", "u-unsub"))
    assert answer["outcome"] == "opted_out"
    assert answer["policy"] == "ACME_MKT@2"

    listed = client.get("/v1/subaccounts", headers=bearer(keys["admin"])).json()
    assert [s["subaccount"] for s in listed["subaccounts"]] == ["ACME_MKT"]
    assert listed["subaccounts"][0]["policy"] == "ACME_MKT@2"
    assert "UNSUB" in listed["subaccounts"][0]["effective_keywords"]["opt_out"]


def test_unknown_deny_suppresses_numbers_without_an_entry(
    client: Client, keys: dict[str, str]
) -> None:
    assert state(client, keys, "ACME_MKT")["allowed"] is True
    admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"unknown": "deny"})
    decision = state(client, keys, "ACME_MKT")
    assert decision["state"] == "unknown"
    assert decision["allowed"] is False


def test_an_unchanged_put_writes_nothing(client: Client, keys: dict[str, str]) -> None:
    admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"default_region": "SG"})
    before = head(client)
    r = admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"default_region": "SG"})
    assert r.status_code == 200
    assert r.json()["changed"] is False
    assert head(client) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"keywords": {"remove": {"opt_out": ["STOP"]}}}, 422),
        ({"keywords": {"remove": {"help": ["AIDE"]}}}, 422),
        ({"keywords": {"add": {"opt_in": ["STOP"]}}}, 422),
        ({"default_region": "XX"}, 422),
        ({"mode": "lenient"}, 400),
        ({"unknown": "maybe"}, 400),
        ({"colour": "blue"}, 400),
        ({"keywords": {"add": {"shout": ["HEY"]}}}, 400),
    ],
)
def test_refused_subaccount_changes_write_nothing(
    client: Client, keys: dict[str, str], body: dict[str, Any], status: int
) -> None:
    admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {})
    before = head(client)
    r = admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert head(client) == before


@pytest.mark.parametrize(
    ("added", "named"),
    [
        ({"opt_in": ["remove me"]}, "revocation phrase REMOVE ME"),
        ({"opt_in": ["Do not text"]}, "revocation phrase DO NOT TEXT"),
        ({"help": ["stop help"]}, "opt-out keyword STOP"),
    ],
)
def test_an_opt_in_or_help_keyword_that_revokes_is_refused(
    client: Client, keys: dict[str, str], added: dict[str, list[str]], named: str
) -> None:
    admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {})
    before = head(client)
    r = admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"keywords": {"add": added}})
    assert r.status_code == 422, r.text
    assert named in r.json()["detail"]
    assert head(client) == before


def test_malformed_subaccount_id_is_422(client: Client, keys: dict[str, str]) -> None:
    before = head(client)
    assert admin(client, keys, "PUT", "/v1/subaccounts/has%20space", {}).status_code == 422
    assert head(client) == before


def test_subaccount_routes_auth(client: Client, keys: dict[str, str]) -> None:
    admin(client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {})
    before = head(client)
    for key in ("audit", "check", "ingest", "operator"):
        assert (
            admin(
                client, keys, "PUT", "/v1/subaccounts/ACME_MKT", {"mode": "strict"}, key=key
            ).status_code
            == 403
        )
    assert client.get("/v1/subaccounts", headers=bearer(keys["audit"])).status_code == 200
    for key in ("check", "ingest", "operator"):
        assert client.get("/v1/subaccounts", headers=bearer(keys[key])).status_code == 403
    theirs = client.get("/v1/subaccounts", headers=bearer(keys["other"])).json()
    assert theirs == {"subaccounts": []}
    assert head(client) == before


# -- tenant ----------------------------------------------------------------------------------


def test_revoke_all_makes_every_later_stop_tenant_wide(
    client: Client, keys: dict[str, str]
) -> None:
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    assert state(client, keys, "ACME_CARE")["state"] == "unknown"

    r = admin(client, keys, "PUT", "/v1/tenant", {"revoke_all": True})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tenant": "default",
        "revoke_all": True,
        "position": head(client),
        "changed": True,
    }
    assert state(client, keys, "ACME_CARE")["state"] == "unknown"  # earlier entries keep scope

    webhook(client, keys, sms("STOP", "u-later", timestamp="2026-03-05T00:00:00.000Z"))
    care = state(client, keys, "ACME_CARE")
    assert care["state"] == "opted_out"
    assert "every subaccount" in care["reason"]

    before = head(client)
    same = admin(client, keys, "PUT", "/v1/tenant", {"revoke_all": True})
    assert same.json()["changed"] is False
    assert head(client) == before


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("admin", {"revoke_all": "yes"}, 400),
        ("admin", {}, 400),
        ("admin", {"revoke_all": True, "x": 1}, 400),
        ("audit", {"revoke_all": True}, 403),
        ("operator", {"revoke_all": True}, 403),
    ],
)
def test_refused_tenant_changes_write_nothing(
    client: Client, keys: dict[str, str], key: str, body: dict[str, Any], status: int
) -> None:
    before = head(client)
    assert admin(client, keys, "PUT", "/v1/tenant", body, key=key).status_code == status
    assert head(client) == before


def test_revoke_all_is_per_tenant(client: Client, keys: dict[str, str]) -> None:
    admin(client, keys, "PUT", "/v1/tenant", {"revoke_all": True}, key="other")
    webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    assert state(client, keys, "ACME_CARE")["state"] == "unknown"


# -- retractions -----------------------------------------------------------------------------


def test_retraction_changes_the_decision_but_not_the_past(
    client: Client, keys: dict[str, str]
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    r = admin(
        client,
        keys,
        "POST",
        "/v1/retractions",
        {"position": stop["position"], "reason": "test message from QA"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["position"] == head(client)
    assert body["retracts"] == stop["position"]
    assert body["retracted_type"] == "consent.revoked"
    assert state(client, keys, "ACME_MKT")["state"] == "unknown"
    as_known = state(client, keys, "ACME_MKT", known_at=str(stop["position"]))
    assert as_known["state"] == "opted_out"


@pytest.mark.parametrize(
    ("target", "body_extra", "status"),
    [
        ("stop", {"reason": "again"}, 422),  # already retracted (set up below)
        ("config", {"reason": "x"}, 422),  # configuration cannot be retracted
        ("missing", {"reason": "x"}, 422),
        ("stop_other", {"reason": "x"}, 422),  # another tenant's entry: as if missing
        ("fresh", {"reason": "  "}, 422),
        ("fresh", {}, 400),
        ("zero", {"reason": "x"}, 400),
    ],
)
def test_refused_retractions_write_nothing(
    client: Client, keys: dict[str, str], target: str, body_extra: dict[str, Any], status: int
) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    fresh = webhook(client, keys, sms("STOP", "u-fresh", subaccount="ACME_CARE"))
    if target == "stop":
        admin(
            client,
            keys,
            "POST",
            "/v1/retractions",
            {"position": stop["position"], "reason": "first"},
        )
    positions = {
        "stop": stop["position"],
        "config": 1,
        "missing": 9999,
        "stop_other": stop["position"],
        "fresh": fresh["position"],
        "zero": 0,
    }
    key = "other" if target == "stop_other" else "admin"
    before = head(client)
    r = admin(
        client,
        keys,
        "POST",
        "/v1/retractions",
        {"position": positions[target], **body_extra},
        key=key,
    )
    assert r.status_code == status, r.text
    assert head(client) == before
    if target == "stop_other":
        missing = admin(
            client, keys, "POST", "/v1/retractions", {"position": 9999, "reason": "x"}, key="other"
        )
        assert r.json()["detail"] == missing.json()["detail"].replace("9999", str(stop["position"]))


@pytest.mark.parametrize("key", ["audit", "check", "ingest", "operator", "revoked"])
def test_retraction_needs_an_admin_key(client: Client, keys: dict[str, str], key: str) -> None:
    stop = webhook(client, keys, fixture_body("inbound-sms-stop.json"))
    before = head(client)
    r = admin(
        client,
        keys,
        "POST",
        "/v1/retractions",
        {"position": stop["position"], "reason": "x"},
        key=key,
    )
    assert r.status_code == (401 if key == "revoked" else 403)
    assert head(client) == before
    assert state(client, keys, "ACME_MKT")["state"] == "opted_out"


def test_openapi_has_an_example_per_endpoint(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()
    mine = {
        ("/v1/consent/{subaccount}/{msisdn}", "get"),
        ("/v1/consent/check", "post"),
        ("/v1/audit/{subaccount}/{msisdn}", "get"),
        ("/v1/review", "get"),
        ("/v1/review/{position}/resolve", "post"),
        ("/v1/subaccounts/{subaccount_id}", "put"),
        ("/v1/subaccounts", "get"),
        ("/v1/tenant", "put"),
        ("/v1/retractions", "post"),
    }
    for path, method in mine:
        op = schema["paths"][path][method]
        assert op["summary"]
        ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
        assert ok["content"]["application/json"]["examples"], (path, method)
        if method in ("post", "put"):
            body = op["requestBody"]["content"]["application/json"]
            assert body.get("examples") or body["schema"]["examples"], (path, method)
