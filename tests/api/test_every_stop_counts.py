"""No STOP is ever lost: every delivery that means "stop" suppresses, whatever shape it has.

Each case is a delivery from a key with the ingest scope, in a shape 8x8, its Automation Builder
tutorial or a hurried integration really produce. Each is answered 2xx and either recorded —
suppressing every subaccount it must cover and no other — or, when it names no usable number,
kept in the quarantine (docs/http-api.md, "Intake").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from ledger.keywords import Policy
from ledger.sqlite.keys import SqliteKeys

from .conftest import basic, bearer, fixture_json

Client = TestClient  # type: ignore[type-arg]
MSISDN = "+6581968289"
OTHER = "+6591234567"
SUBACCOUNTS = ("ACME_MKT", "ACME_CARE", "ACME&CO-1")
ALL = frozenset(SUBACCOUNTS)


def sms(**payload: Any) -> dict[str, Any]:
    """The inbound-SMS STOP with ``payload`` fields replaced (``...`` removes one)."""
    body = fixture_json("inbound-sms-stop.json")
    inner: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    for name, value in payload.items():
        if value is ...:
            inner.pop(name, None)
        else:
            inner[name] = value
    return body


def chat(**payload: Any) -> dict[str, Any]:
    body = fixture_json("inbound-chatapps-stop.json")
    inner: dict[str, Any] = body["payload"]  # type: ignore[assignment]
    inner.update(payload)
    return body


@dataclass(frozen=True)
class Case:
    """One delivery and what it must do."""

    name: str
    path: str
    body: dict[str, Any] | bytes
    covers: frozenset[str]
    """Subaccounts that must be suppressed afterwards."""
    scope: str = "subaccount"
    unresolved: bool = False
    subaccount: str | None = "ACME_MKT"
    auth: str = "bearer"
    query: dict[str, str] = field(default_factory=dict)
    msisdn: str = MSISDN


WEBHOOK = "/v1/webhooks/8x8"
OPT_OUT = "/v1/opt-outs"
MKT = frozenset({"ACME_MKT"})
TUTORIAL = "{{data.payload.content.text}}"

CASES = [
    # -- the published Automation Builder tutorial and its renderings ----------------------
    Case("tutorial-sms-empty", OPT_OUT, {"msisdn": MSISDN, "subaccount": ""}, ALL, "tenant", True,
         None),
    Case("tutorial-undefined", OPT_OUT, {"msisdn": MSISDN, "subaccount": "undefined"}, ALL,
         "tenant", True, None),
    Case("tutorial-null-string", OPT_OUT, {"msisdn": MSISDN, "subaccount": "null"}, ALL, "tenant",
         True, None),
    Case("tutorial-json-null", OPT_OUT, {"msisdn": MSISDN, "subaccount": None}, ALL, "tenant",
         True, None),
    Case("tutorial-unrendered", OPT_OUT, {"msisdn": MSISDN, "subaccount": TUTORIAL}, ALL,
         "tenant", True, None),
    Case("tutorial-keyword", OPT_OUT, {"msisdn": MSISDN, "subaccount": "STOP"}, ALL, "tenant",
         True, None),
    Case("tutorial-line-break", OPT_OUT, {"msisdn": MSISDN, "subaccount": "Stop\nplease"}, ALL,
         "tenant", True, None),
    Case("tutorial-stop-all", OPT_OUT, {"msisdn": MSISDN, "subaccount": "STOP ALL"}, ALL,
         "tenant", True, None),
    Case("tutorial-start-text", OPT_OUT, {"msisdn": MSISDN, "subaccount": "START"}, ALL, "tenant",
         True, None),
    Case("tutorial-missing", OPT_OUT, {"msisdn": MSISDN}, ALL, "tenant", True, None),
    Case("tutorial-basic-auth", OPT_OUT, {"msisdn": MSISDN, "subaccount": ""}, ALL, "tenant",
         True, None, auth="basic"),
    Case("tutorial-to-webhook", WEBHOOK, {"msisdn": MSISDN, "subaccount": "STOP"}, ALL, "tenant",
         True, None),
    Case("tutorial-to-webhook-basic", WEBHOOK, {"msisdn": MSISDN, "subaccount": ""}, ALL,
         "tenant", True, None, auth="basic"),
    # -- the URL names the workflow's subaccount --------------------------------------------
    Case("url-scoped-empty", OPT_OUT, {"msisdn": MSISDN, "subaccount": ""}, MKT,
         query={"subaccount": "ACME_MKT"}),
    Case("url-scoped-keyword", OPT_OUT, {"msisdn": MSISDN, "subaccount": "STOP"}, MKT,
         query={"subaccount": "ACME_MKT"}),
    Case("url-scoped-stop-all", OPT_OUT, {"msisdn": MSISDN, "subaccount": "STOP ALL"}, ALL,
         "tenant", query={"subaccount": "ACME_MKT"}),
    Case("url-unknown", OPT_OUT, {"msisdn": MSISDN, "subaccount": ""}, ALL, "tenant", True, None,
         query={"subaccount": "NOT_A_SUBACCOUNT"}),
    Case("url-national-number", OPT_OUT, {"msisdn": "81968289", "subaccount": ""}, MKT,
         query={"subaccount": "ACME_MKT"}),
    # -- corrected bodies with a twist ------------------------------------------------------
    Case("corrected-plus-destination", OPT_OUT,
         {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "STOP", "destination": "+6590001111"},
         MKT),
    Case("corrected-unrendered-umid", OPT_OUT,
         {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "STOP", "umid": "undefined"}, MKT),
    Case("corrected-long-text", OPT_OUT,
         {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "STOP " + "x" * 5000}, MKT),
    Case("corrected-text-number", OPT_OUT,
         {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": 42}, MKT),
    Case("ampersand-subaccount", OPT_OUT,
         {"msisdn": MSISDN, "subaccount": "ACME&CO-1", "text": "STOP"},
         frozenset({"ACME&CO-1"}), subaccount="ACME&CO-1"),
    # -- 8x8 webhooks with unusable ids -----------------------------------------------------
    Case("webhook-no-subaccount", WEBHOOK, sms(subAccountId=...), ALL, "tenant", True, None),
    Case("webhook-undefined-subaccount", WEBHOOK, sms(subAccountId="undefined"), ALL, "tenant",
         True, None),
    Case("webhook-templated-subaccount", WEBHOOK, sms(subAccountId="{{data.payload.subAccountId}}"),
         ALL, "tenant", True, None),
    Case("webhook-no-umid", WEBHOOK, sms(umid=...), MKT),
    Case("webhook-undefined-umid", WEBHOOK, sms(umid="undefined"), MKT, auth="basic"),
    Case("webhook-no-timestamp-no-umid", WEBHOOK, sms(umid=..., timestamp=...), MKT),
    Case("webhook-bad-timestamp", WEBHOOK, sms(timestamp="tomorrow"), MKT),
    Case("webhook-automation-envelope", WEBHOOK,
         {"data": {"payload": sms()["payload"]}}, MKT),
    Case("chatapps-button", WEBHOOK,
         chat(type="Interactive", content={"interactive": {"button_reply": {"title": "STOP"}}},
              subAccountId="ACME_MKT"), MKT, msisdn="+6591234567"),
    Case("chatapps-no-subaccount", WEBHOOK, chat(subAccountId=""), ALL, "tenant", True, None,
         msisdn="+6591234567"),
]  # fmt: skip


def _setup(client: Client, keys: dict[str, str]) -> None:
    ledger = client.app.state.services.ledger
    for name in SUBACCOUNTS:
        ledger.configure_subaccount("default", name, actor="test", default_region="SG")
    ledger.configure_subaccount("other", "ACME_MKT", actor="test")


def _post(client: Client, keys: dict[str, str], case: Case) -> Any:
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    auth = basic(keys["ingest"]) if case.auth == "basic" else bearer(keys["ingest"])
    return client.post(
        case.path,
        content=raw,
        params=case.query,
        headers={"Content-Type": "application/json", **auth},
    )


def _allowed(client: Client, key: str, subaccount: str, msisdn: str) -> bool:
    r = client.get(f"/v1/consent/{subaccount}/{msisdn.replace('+', '%2B')}", headers=bearer(key))
    assert r.status_code == 200, r.text
    return bool(r.json()["allowed"])


def test_the_table_has_every_shape() -> None:
    assert len(CASES) >= 25
    assert {c.path for c in CASES} == {WEBHOOK, OPT_OUT}
    assert {c.auth for c in CASES} == {"bearer", "basic"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_delivery_that_means_stop_suppresses(
    client: Client, keys: dict[str, str], case: Case
) -> None:
    _setup(client, keys)
    r = _post(client, keys, case)
    assert r.status_code in (200, 201), r.text
    answer = r.json()
    assert answer["outcome"] == "opted_out", answer
    entry = client.app.state.services.ledger.store.read_from(answer["position"], 1)[0].entry
    event = entry.event
    assert (event.scope, event.unresolved_subaccount is not None) == (case.scope, case.unresolved)
    assert entry.subaccount == case.subaccount
    assert entry.msisdn == case.msisdn
    for name in SUBACCOUNTS:
        suppressed = not _allowed(client, keys["check"], name, case.msisdn)
        assert suppressed == (name in case.covers), name
    # Never spread beyond what it covers: another tenant's same subaccount, another number.
    assert _allowed(client, keys["other"], "ACME_MKT", case.msisdn)
    assert _allowed(client, keys["check"], "ACME_MKT", "+6590009999")
    # A retry (8x8 retries on any error) is answered 2xx again and suppresses still.
    again = _post(client, keys, case)
    assert again.status_code in (200, 201)
    assert not _allowed(client, keys["check"], sorted(case.covers)[0], case.msisdn)


def test_an_unresolved_opt_out_is_queued_for_review(client: Client, keys: dict[str, str]) -> None:
    _setup(client, keys)
    r = _post(client, keys, CASES[0])
    queued = client.app.state.services.ledger.review_queue("default")
    assert [(i.position, i.kind) for i in queued] == [(r.json()["position"], "unresolved")]


def test_personal_text_in_the_subaccount_never_enters_the_signed_entry(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    body = {"msisdn": MSISDN, "subaccount": "please stop, my name is Tan Ah Kow"}
    answer = _post(client, keys, Case("x", OPT_OUT, body, ALL)).json()
    stored = client.app.state.services.ledger.store.read_from(answer["position"], 1)[0]
    assert b"Tan Ah Kow" not in stored.data
    assert stored.entry.event.unresolved_subaccount.startswith("sha256:")
    assert stored.entry.event.scope == "tenant"


def test_two_stops_whose_umids_render_undefined_are_both_recorded(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    first = _post(client, keys, Case("a", WEBHOOK, sms(umid="undefined"), MKT))
    second = _post(client, keys, Case("b", WEBHOOK, sms(umid="undefined", source=OTHER), MKT))
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, False)
    assert first.json()["position"] != second.json()["position"]
    assert not _allowed(client, keys["check"], "ACME_MKT", MSISDN)
    assert not _allowed(client, keys["check"], "ACME_MKT", OTHER)


def test_a_umid_reused_by_another_person_is_recorded_and_flagged(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    _post(client, keys, Case("a", WEBHOOK, sms(umid="same-id"), MKT))
    r = _post(client, keys, Case("b", WEBHOOK, sms(umid="same-id", source=OTHER), MKT))
    answer = r.json()
    assert (answer["outcome"], answer["duplicate"]) == ("opted_out", False)
    assert any("already used" in n for n in answer["notes"])
    assert not _allowed(client, keys["check"], "ACME_MKT", OTHER)
    kinds = [i.kind for i in client.app.state.services.ledger.review_queue("default")]
    assert kinds == ["check"]


def test_an_undefined_subaccount_registers_nothing(client: Client, keys: dict[str, str]) -> None:
    _setup(client, keys)
    _post(client, keys, Case("a", WEBHOOK, sms(subAccountId="undefined"), ALL))
    names = [s.subaccount for s in client.app.state.services.ledger.subaccounts("default")]
    assert "undefined" not in names


def test_unresolved_classification_uses_every_subaccounts_opt_out_keywords(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    client.put(
        "/v1/subaccounts/ACME_CARE",
        json={"keywords": {"add": {"opt_out": ["DESIST"]}}},
        headers=bearer(keys["admin"]),
    ).raise_for_status()
    r = _post(client, keys, Case("a", WEBHOOK, sms(subAccountId="", body="desist"), ALL))
    answer = r.json()
    assert (answer["outcome"], answer["keyword"]) == ("opted_out", "DESIST")
    assert answer["policy"].startswith("all-subaccounts@")


@pytest.mark.parametrize("kind", ["image", "audio", "video", "location", "sticker"])
def test_chatapps_media_without_text_is_ignored(
    client: Client, keys: dict[str, str], kind: str
) -> None:
    body = chat(type=kind.capitalize(), content={"url": "https://example.invalid/x"})
    r = _post(client, keys, Case("m", WEBHOOK, body, ALL))
    assert r.json()["outcome"] == "ignored"


def test_chatapps_unknown_type_without_text_is_quarantined(
    client: Client, keys: dict[str, str]
) -> None:
    body = chat(type="Hologram", content={"shape": 3})
    assert _post(client, keys, Case("m", WEBHOOK, body, ALL)).json()["outcome"] == "quarantined"


def test_cli_record_follows_the_same_rules(client: Client, keys: dict[str, str]) -> None:
    """One implementation: the CLI's opt-out with an unusable subaccount is tenant-wide too."""
    from projections.intake import IntakeRequest, record

    _setup(client, keys)
    ledger = client.app.state.services.ledger
    result = record(
        ledger,
        IntakeRequest(
            tenant="default", subaccount="undefined", msisdn=MSISDN, method="admin", verb="opt_out"
        ),
    )
    assert (result.unresolved, result.entry.event.scope) == (True, "tenant")


# -- mutations of a valid STOP ---------------------------------------------------------------
_LEAVES = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["", "undefined", "null", "{{data.payload.body}}", "STOP", "+6581968289"]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a few fields dropped, renamed, retyped, templated or nested."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        target = doc["payload"] if "payload" in doc and draw(st.booleans()) else doc
        if not isinstance(target, dict) or not target:
            continue
        name = draw(st.sampled_from(sorted(target)))
        how = draw(st.sampled_from(["drop", "rename", "retype", "template", "nest"]))
        if how == "drop":
            target.pop(name)
        elif how == "rename":
            target[name.upper() + "_"] = target.pop(name)
        elif how == "retype":
            target[name] = draw(_VALUES)
        elif how == "template":
            target[name] = "{{data.payload." + name + "}}"
        else:
            target[name] = {"value": target[name]}
    return doc


_WEBHOOK_STOP = fixture_json("inbound-sms-stop.json")
_OPT_OUT_STOP = fixture_json("automation-builder-corrected-body.json")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from([WEBHOOK, OPT_OUT]).flatmap(
        lambda path: st.tuples(
            st.just(path), mutated(_WEBHOOK_STOP if path == WEBHOOK else _OPT_OUT_STOP)
        )
    )
)
def test_a_mutated_stop_is_never_refused_and_never_dropped(
    stop_client: tuple[Client, dict[str, str]], delivery: tuple[str, dict[str, Any]]
) -> None:
    client, keys = stop_client
    path, body = delivery
    ledger = client.app.state.services.ledger
    head = ledger.head()
    quarantined = len(
        client.get("/v1/quarantine?limit=1000", headers=bearer(keys["audit"])).json()["items"]
    )
    r = client.post(path, content=json.dumps(body).encode(), headers={**bearer(keys["ingest"])})
    assert r.status_code < 400, r.text
    answer = r.json()
    kept = len(
        client.get("/v1/quarantine?limit=1000", headers=bearer(keys["audit"])).json()["items"]
    )
    outcome = answer["outcome"]
    if outcome == "quarantined":
        assert kept == quarantined + 1
    elif outcome == "ignored":  # only an event that is not an inbound message
        assert isinstance(body.get("eventType"), str)
        assert "{{" not in body["eventType"]
    elif outcome in ("opted_out", "review"):
        assert ledger.head() > head or answer["duplicate"]
    else:  # the mutation replaced the text with words that no longer mean stop
        text = (
            body.get("payload", {}).get("body") if isinstance(body.get("payload"), dict) else None
        )
        assert isinstance(text, str), answer
        assert Policy().classify(text).action in ("none", "opt_in", "help"), answer


@pytest.fixture(scope="module")
def stop_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One app for every mutation (hypothesis runs many examples against it)."""
    from api.app import create_app
    from api.keys import create_key
    from api.settings import Settings
    from ledger.sqlite.connection import connect

    db = tmp_path_factory.mktemp("mutations") / "ledger.db"
    settings_ = Settings(db=db, log_format="json", checkpoint_interval=0)
    with TestClient(create_app(settings_), raise_server_exceptions=False) as client:
        conn = connect(db)
        keys = {
            scope: create_key(SqliteKeys(conn), tenant="default", scopes=[scope])  # type: ignore[list-item]
            for scope in ("ingest", "audit")
        }
        conn.close()
        client.app.state.services.ledger.configure_subaccount(
            "default", "ACME_MKT", actor="test", default_region="SG"
        )
        yield client, keys


def test_metrics_show_the_review_queue_and_its_oldest_item(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    _post(client, keys, CASES[0])
    text = client.get("/metrics", headers=bearer(keys["all"])).text
    assert 'consent_ledger_review_open{kind="unresolved"} 1.0' in text
    age = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("consent_ledger_review_oldest_age_seconds ")
    )
    assert age >= 0.0


def test_a_large_body_is_kept_as_a_described_prefix(client: Client, keys: dict[str, str]) -> None:
    """Evidence and the quarantine keep exact bytes up to 64 KiB, then a prefix, the length and
    the SHA-256 of the whole body (docs/evidence.md)."""
    import base64
    import hashlib

    from ledger.entries import MAX_KEPT_BYTES, decode_evidence

    _setup(client, keys)
    body = json.dumps(
        {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "STOP", "pad": "é" * 60_000}
    ).encode()
    answer = _post(client, keys, Case("big", OPT_OUT, body, MKT)).json()
    ledger = client.app.state.services.ledger
    _, content = ledger.store.evidence([answer["position"]])[answer["position"]]
    evidence = decode_evidence(content)
    kept = evidence.raw_body.encode() if evidence.raw_body is not None else evidence.raw_bytes
    assert kept == body[:MAX_KEPT_BYTES]
    assert (evidence.raw_length, evidence.raw_sha256) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    garbage = b"\xff" * 100_000
    _post(client, keys, Case("junk", OPT_OUT, garbage, MKT))
    item = client.get("/v1/quarantine", headers=bearer(keys["audit"])).json()["items"][-1]
    assert base64.b64decode(item["body_base64"]) == garbage[:MAX_KEPT_BYTES]
    assert (item["truncated"], item["length"]) == (True, len(garbage))
    assert item["sha256"] == hashlib.sha256(garbage).hexdigest()


def test_a_small_body_is_kept_byte_for_byte(client: Client, keys: dict[str, str]) -> None:
    from ledger.entries import decode_evidence

    _setup(client, keys)
    body = b'{"msisdn": "+6581968289",\n "subaccount": "ACME_MKT", "text": "STOP\\u00e9"}\n'
    answer = _post(client, keys, Case("small", OPT_OUT, body, MKT)).json()
    ledger = client.app.state.services.ledger
    _, content = ledger.store.evidence([answer["position"]])[answer["position"]]
    evidence = decode_evidence(content)
    assert evidence.raw_body is not None
    assert evidence.raw_body.encode() == body
    assert evidence.raw_length is None


def test_an_opt_out_to_check_is_resolved_and_stays_in_force(
    client: Client, keys: dict[str, str]
) -> None:
    _setup(client, keys)
    body = {"msisdn": MSISDN, "subaccount": "ACME_MKT", "text": "START"}  # verb and text disagree
    answer = _post(client, keys, Case("x", OPT_OUT, body, MKT)).json()
    assert answer["flagged"]
    r = client.post(
        f"/v1/review/{answer['position']}/resolve",
        json={"action": "dismiss", "note": "the workflow sent START by mistake; keep it"},
        headers=bearer(keys["admin"]),
    )
    assert r.status_code == 200, r.text
    assert "stays in force" in " ".join(r.json()["notes"])
    assert not _allowed(client, keys["check"], "ACME_MKT", MSISDN)
    assert client.app.state.services.ledger.review_queue("default") == []
