"""The compliance console in a real browser: Debian's Chromium driven by Playwright against
``consent-ledger serve``.

One server and one browser for the module. The walk-through signs in, looks a number up in
national form, reads the decisions and the timeline, moves the point in time, downloads the
evidence bundle and verifies it offline, resolves a review item, is refused another tenant's
item and a form without its anti-forgery token, and signs out. Every page is screenshotted into
the test's own output folder and checked with axe-core (vendored in ``vendor/``, loaded by the
browser, never by the service): no serious or critical violation. No page may break its own
Content-Security-Policy.

Chromium comes from the system (``apt-get install chromium``); without it the test is skipped
with the reason shown, unless ``CL_REQUIRE_CHROMIUM`` is set (``.ci/run`` sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..server_util import CLI, Server, start_server, stop_server

pytestmark = pytest.mark.slow

REQUIRE = "CL_REQUIRE_CHROMIUM"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "8x8"
MSISDN = "+6581968289"
SERIOUS = ("serious", "critical")


def chromium() -> str:
    """The system's Chromium, or skip (fail under ``CL_REQUIRE_CHROMIUM``)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get(REQUIRE):
            pytest.fail(message)
        pytest.skip(message)
    return found


def cli(server: Server, *args: str) -> str:
    """``consent-ledger ARGS --db <the server's db>``'s stdout."""
    done = subprocess.run(
        [str(CLI), *args, "--db", str(server.db)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def sms(text: str, umid: str, subaccount: str, timestamp: str) -> bytes:
    body = json.loads((FIXTURES / "inbound-sms-stop.json").read_text())
    body["payload"].update(umid=umid, body=text, subAccountId=subaccount, timestamp=timestamp)
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium()
    running = start_server(tmp_path_factory.mktemp("console-server"), workers=1)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    """Two subaccounts in SG; the number opted out by STOP on ACME_MKT (2 March), back in by
    START (11 April), out of every subaccount by STOP ALL (1 May), a message flagged for review;
    and tenant ``other`` with a review item of its own."""
    assert server.key is not None
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"})
    for sub in ("ACME_MKT", "ACME_ALERTS"):
        assert api.put(f"/v1/subaccounts/{sub}", json={"default_region": "SG"}).is_success
    hook = "/v1/webhooks/8x8"
    for name in ("inbound-sms-stop.json", "inbound-sms-start.json"):
        assert api.post(hook, content=(FIXTURES / name).read_bytes()).is_success
    wide = sms("STOP ALL", "u-wide", "ACME_ALERTS", "2026-05-01T08:00:00Z")
    assert api.post(hook, content=wide).json()["outcome"] == "opted_out"
    flagged = api.post(
        hook, content=sms("can you stop the delivery at 5?", "u-flag", "ACME_MKT",
                          "2026-05-02T08:00:00Z")
    ).json()  # fmt: skip
    assert flagged["outcome"] == "review"
    other = cli(server, "keys", "create", "--tenant", "other", "--scopes", "ingest,audit,admin")
    theirs = httpx.post(
        server.url + hook,
        content=sms("stop it?", "u-other", "OTHER_SUB", "2026-05-03T08:00:00Z"),
        headers={"Authorization": f"Bearer {other}"},
    ).json()
    return {"review": flagged["position"], "other_review": theirs["position"]}


class Walk:
    """The browser page, with a screenshot and an accessibility check of every page shown."""

    def __init__(self, page: Any, server: Server, shots: Path) -> None:
        self.page = page
        self.server = server
        self.shots = shots
        self.csp: list[str] = []
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)

    def check(self, name: str) -> None:
        """Screenshot the page as ``name.png`` and fail on a serious axe violation."""
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        result = self.page.evaluate(
            "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        )
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"]
            if v["impact"] in SERIOUS
        ]
        assert not bad, f"{name}: {bad}"

    def go(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)


@pytest.fixture(scope="module")
def walk(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("console-screenshots")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1200, "height": 900}
        )
        context.add_init_script(path=str(AXE))  # the browser's, not the page's: CSP-exempt
        yield Walk(context.new_page(), server, shots)
        context.close()
        browser.close()


def test_the_console_walk_through(
    walk: Walk, server: Server, world: dict[str, Any], tmp_path: Path
) -> None:
    page = walk.page
    assert server.key is not None
    # sign in: a page asked for without a session leads to the sign-in form, then back
    walk.go("/console/number")
    assert "/console/sign-in" in page.url
    walk.check("sign-in")
    page.fill("#key", server.key)
    page.click("button[type=submit]")
    assert page.url.endswith("/console/number")
    who = page.inner_text(".who")
    assert "default" in who
    assert server.key.split("_")[1] in who

    # look a number up in national form: decision per subaccount, timeline
    page.fill("#q", "81968289")
    page.click(".lookup button[type=submit]")
    assert page.inner_text("#answer") == MSISDN
    rows = page.inner_text("table.decisions")
    assert "ACME_ALERTS" in rows
    assert "opted out by STOP ALL for every subaccount" in rows  # the tenant-wide STOP wins
    assert page.locator(".timeline-svg a.bar").count() >= 3
    assert page.locator(".timeline-svg a.marker").count() == 1  # the STOP ALL, across all rows
    page.locator(".timeline-svg a.bar").first.focus()
    assert "decided by entry" in page.inner_text("#timeline-detail")  # the script ran
    walk.check("number")

    # the point in time: 3 March, between the STOP and the START
    page.fill("#at", "2026-03-03")
    page.click(".lookup button[type=submit]")
    assert "2026-03-03T00:00:00.000Z" in page.inner_text(".asof")
    mkt = page.locator("table.decisions tr", has_text="ACME_MKT").inner_text()
    assert "Suppressed" in mkt
    assert "opted out by STOP for this subaccount" in mkt
    alerts = page.locator("table.decisions tr", has_text="ACME_ALERTS").inner_text()
    assert "Allowed" in alerts
    walk.check("number-point-in-time")

    # the evidence bundle, verified offline
    with page.expect_download() as download:
        page.locator("table.decisions tr", has_text="ACME_MKT").get_by_text(
            "Evidence bundle (JSON)"
        ).click()
    bundle = tmp_path / "bundle.json"
    download.value.save_as(bundle)
    key = cli(server, "signing-key", "show")
    verified = subprocess.run(
        [str(CLI), "verify-bundle", str(bundle), "--key", key], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK:")

    # overview, quarantine, subaccounts
    walk.go("/console/")
    assert page.inner_text(".tile .big >> nth=0") == "1"  # the flagged message
    walk.check("overview")
    walk.go("/console/quarantine")
    walk.check("quarantine")
    walk.go("/console/subaccounts")
    assert "ACME_MKT@1" in page.inner_text("main")
    walk.check("subaccounts")

    # resolve the review item, with a confirmation step
    walk.go("/console/review")
    item = f"#item-{world['review']}"
    assert page.locator(item).count() == 1
    walk.check("review")
    page.locator(item).get_by_text("Dismiss").click()
    walk.check("review-confirm")
    page.fill("#note", "a question about a delivery, not a revocation")
    page.click("form.confirm button[type=submit]")
    assert f"Review item {world['review']} is resolved" in page.inner_text("main")
    assert page.locator(item).count() == 0

    # another tenant's item is refused like one that does not exist
    refused = walk.go(f"/console/review/{world['other_review']}")
    assert refused.status == 404
    walk.check("refused")

    # a form without its anti-forgery token is refused, and nothing happens
    walk.go("/console/")
    with page.expect_navigation():
        page.evaluate(
            "() => { const f = document.querySelector('.who form');"
            " f.querySelector('[name=_csrf_token]').remove(); f.submit(); }"
        )
    assert "anti-forgery" in page.inner_text("main")
    assert walk.go("/console/").url.endswith("/console/")  # still signed in

    # sign out: every page is refused afterwards
    page.click(".who button")
    assert "You are signed out" in page.inner_text("main")
    walk.go("/console/review")
    assert "/console/sign-in" in page.url
    assert not walk.csp, walk.csp
