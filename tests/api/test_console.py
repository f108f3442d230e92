"""The compliance console over HTTP (no browser): sessions, anti-forgery tokens, tenant
isolation, what each page shows, and that everything it serves is its own.

The browser walk-through (and the accessibility check) is ``tests/console/test_browser.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from api.console import CSP
from api.keys import create_key, revoke_key
from api.settings import Settings
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys

from .conftest import MSISDN, STOP_AT, bearer, sms, webhook

Client = TestClient  # type: ignore[type-arg]
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def sign_in(client: Client, key: str) -> Any:
    """Sign in through the form, as a browser would; the response after the redirect."""
    page = client.get("/console/sign-in")
    assert page.status_code == 200
    return client.post(
        "/console/sign-in",
        data={"key": key, "_csrf_token": csrf_of(page.text), "next": "/console/"},
    )


@pytest.fixture
def setup(client: Client, keys: dict[str, str]) -> dict[str, str]:
    """ACME_MKT in SG with a STOP, a flagged message for review; ACME_ALERTS; tenant 'other'
    with a review item of its own."""
    for sub in ("ACME_MKT", "ACME_ALERTS"):
        r = client.put(f"/v1/subaccounts/{sub}", json={"default_region": "SG"},
                       headers=bearer(keys["admin"]))  # fmt: skip
        assert r.status_code == 200, r.text
    webhook(client, keys, sms("STOP", "u-1"))
    flagged = webhook(client, keys, sms("can you stop the delivery at 5?", "u-2"))
    assert flagged["outcome"] == "review"
    r = client.post(
        "/v1/webhooks/8x8",
        content=sms("please stop", "u-3"),
        headers={**bearer(keys["other"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200
    other_review = client.post(
        "/v1/webhooks/8x8",
        content=sms("stop the delivery?", "u-4"),
        headers={**bearer(keys["other"]), "Content-Type": "application/json"},
    ).json()
    return {"review": str(flagged["position"]), "other_review": str(other_review["position"])}


def test_pages_need_a_session(client: Client) -> None:
    r = client.get("/console/number?q=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/sign-in?next=")
    assert client.get("/console/static/console.css").status_code == 200


@pytest.mark.parametrize(
    ("who", "says"),
    [
        ("none", "not valid or has been revoked"),
        ("revoked", "not valid or has been revoked"),
        ("operator", "operator keys"),
        ("check", "lacks the audit scope"),
    ],
)
def test_sign_in_refuses_a_key_that_cannot_audit(
    client: Client, keys: dict[str, str], who: str, says: str
) -> None:
    r = sign_in(client, keys[who])
    assert r.status_code == 401
    assert says in r.text
    assert "cl_console=" not in r.headers.get("set-cookie", "")


def test_session_cookie_and_headers(client: Client, keys: dict[str, str]) -> None:
    page = client.get("/console/sign-in")
    r = client.post(
        "/console/sign-in",
        data={"key": keys["audit"], "_csrf_token": csrf_of(page.text), "next": "/console/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("cl_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/console" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure behind HTTPS
    assert keys["audit"] not in cookie
    home = client.get("/console/")
    assert home.status_code == 200
    assert home.headers["content-security-policy"] == CSP
    assert home.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in home.headers["cache-control"]
    assert "Tenant <strong>default</strong>" in home.text
    assert keys["audit"].split("_")[1] in home.text
    assert "style=" not in home.text
    assert "<script>" not in home.text


def test_a_form_without_its_token_is_refused(
    client: Client, keys: dict[str, str], setup: dict[str, str]
) -> None:
    assert sign_in(client, keys["all"]).status_code == 200
    r = client.post(f"/console/review/{setup['review']}", data={"action": "dismiss", "note": "x"})
    assert r.status_code == 403
    assert "anti-forgery" in r.text
    r = client.post(
        f"/console/review/{setup['review']}",
        data={"action": "dismiss", "note": "x", "_csrf_token": "forged"},
    )
    assert r.status_code == 403
    queue = client.get("/console/review")
    assert f"Item {setup['review']} " in queue.text  # still open: nothing was written
    # sign-in form, too
    r = client.post("/console/sign-in", data={"key": keys["all"]})
    assert r.status_code == 403


def test_number_page_and_point_in_time(
    client: Client, keys: dict[str, str], setup: dict[str, str]
) -> None:
    sign_in(client, keys["audit"])
    r = client.get("/console/number", params={"q": "81968289"})  # national digits, read as SG
    assert r.status_code == 200, r.text
    assert MSISDN in r.text
    assert "Suppressed" in r.text
    assert "opted out by STOP" in r.text
    assert 'class="timeline-svg"' in r.text
    assert "state-opted_out" in r.text
    assert "evidence-text" in r.text
    before = client.get("/console/number", params={"q": MSISDN, "at": "2026-03-01"})
    assert "Suppressed" not in before.text
    assert "Allowed" in before.text
    known = client.get("/console/number", params={"q": MSISDN, "known_at": "2"})
    assert "as known at log position <strong>2</strong>" in known.text
    bad = client.get("/console/number", params={"q": "not a number"})
    assert bad.status_code == 422
    assert 'role="alert"' in bad.text


def test_downloads(client: Client, keys: dict[str, str], setup: dict[str, str]) -> None:
    sign_in(client, keys["audit"])
    params = {"msisdn": MSISDN, "subaccount": "ACME_MKT"}
    bundle = client.get("/console/number/evidence", params=params)
    assert bundle.status_code == 200
    assert bundle.json()["format"] == "consent-ledger-evidence/1"
    assert "attachment" in bundle.headers["content-disposition"]
    html = client.get("/console/number/evidence", params={**params, "format": "html"})
    assert html.status_code == 200
    assert "<!DOCTYPE html>" in html.text
    csv = client.get("/console/number/audit.csv", params=params)
    assert csv.text.startswith("position,type,")
    assert STOP_AT in csv.text


def test_tenant_isolation(client: Client, keys: dict[str, str], setup: dict[str, str]) -> None:
    sign_in(client, keys["all"])
    r = client.get(f"/console/review/{setup['other_review']}")
    assert r.status_code == 404
    page = client.get("/console/review")
    token = csrf_of(page.text)
    r = client.post(
        f"/console/review/{setup['other_review']}",
        data={"action": "dismiss", "note": "not mine", "_csrf_token": token},
    )
    assert r.status_code == 404
    # the other tenant's STOP for the same number is not shown
    number = client.get("/console/number", params={"q": MSISDN})
    assert "please stop" not in number.text
    csv = client.get("/console/number/audit.csv", params={"msisdn": MSISDN, "subaccount": "X"})
    assert "please stop" not in csv.text


def test_resolve_needs_admin_and_records_the_key(
    client: Client, keys: dict[str, str], setup: dict[str, str]
) -> None:
    sign_in(client, keys["audit"])
    page = client.get(f"/console/review/{setup['review']}?action=dismiss")
    assert "no <code>admin</code> scope" in page.text
    token = csrf_of(client.get("/console/").text)
    r = client.post(
        f"/console/review/{setup['review']}",
        data={"action": "dismiss", "note": "n", "_csrf_token": token},
    )
    assert r.status_code == 403
    client.cookies.clear()
    sign_in(client, keys["all"])
    confirm = client.get(f"/console/review/{setup['review']}?action=dismiss")
    assert "Confirm: Dismiss" in confirm.text
    blank = {"action": "dismiss", "note": " ", "_csrf_token": csrf_of(confirm.text)}
    refused = client.post(f"/console/review/{setup['review']}", data=blank)
    assert refused.status_code == 422
    assert "needs a note" in refused.text
    form = {
        "action": "dismiss",
        "note": "a delivery question",
        "_csrf_token": csrf_of(confirm.text),
    }
    r = client.post(f"/console/review/{setup['review']}", data=form)
    assert r.status_code == 200
    assert f"Review item {setup['review']} is resolved" in r.text
    trail = client.get(f"/v1/audit/ACME_MKT/{MSISDN.replace('+', '%2B')}",
                       headers=bearer(keys["audit"])).json()  # fmt: skip
    resolution = [e for e in trail["entries"] if e["type"] == "review.resolved"]
    assert resolution[0]["actor"] == f"key:{keys['all'].split('_')[1]}"


def test_subaccount_edit_is_validated_like_the_api(client: Client, keys: dict[str, str]) -> None:
    sign_in(client, keys["all"])
    page = client.get("/console/subaccounts/ACME_NEW")
    assert "Not registered yet" in page.text
    token = csrf_of(page.text)
    form = {"_csrf_token": token, "default_region": "SG", "mode": "standard", "unknown": "deny",
            "remove_opt_out": "STOP"}  # fmt: skip
    r = client.post("/console/subaccounts/ACME_NEW", data=form)
    assert r.status_code == 422
    assert "STOP" in r.text
    r = client.post("/console/subaccounts/ACME_NEW", data={**form, "remove_opt_out": "BAJA",
                                                           "add_opt_out": "UNSUB"})  # fmt: skip
    assert r.status_code == 200
    assert "Saved." in r.text
    listed = client.get("/console/subaccounts")
    assert "ACME_NEW" in listed.text
    assert "UNSUB" in listed.text


def test_revoking_the_key_ends_the_session_and_sign_out_too(
    client: Client, keys: dict[str, str], settings: Settings
) -> None:
    conn = connect(settings.db)
    key = create_key(SqliteKeys(conn), tenant="default", scopes=["audit"])
    assert sign_in(client, key).status_code == 200
    assert client.get("/console/quarantine").status_code == 200
    revoke_key(SqliteKeys(conn), key.split("_")[1])
    conn.close()
    assert client.get("/console/quarantine", follow_redirects=False).status_code == 303
    sign_in(client, keys["audit"])
    home = client.get("/console/")
    kept = dict(client.cookies)
    r = client.post("/console/sign-out", data={"_csrf_token": csrf_of(home.text)})
    assert "You are signed out" in r.text
    client.cookies.update(kept)  # a copy of the old cookie is refused, too
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_quarantine_shows_control_characters(client: Client, keys: dict[str, str]) -> None:
    r = client.post(
        "/v1/webhooks/8x8",
        content=b"not json \x1b[31m\xe2\x80\xaeevil <script>",
        headers={**bearer(keys["ingest"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 200
    sign_in(client, keys["audit"])
    page = client.get("/console/quarantine")
    assert "\u241b[31m&lt;U+202E&gt;evil &lt;script&gt;" in page.text
    assert "<strong>1</strong> in all" in page.text
    overview = client.get("/console/")
    assert overview.status_code == 200
