"""8x8 retries: each webhook delivered five times, concurrently and spread in time, is one entry.

8x8 retries a webhook on a timeout, a connection error or an error answer, so the same umid can
arrive again while the first delivery is still being written — on another connection, answered
by another worker. Every delivery is answered 200 with the same position; exactly one of the
five is the original, the other four say ``duplicate``. An Automation Builder step relaying the
same message to ``/v1/opt-outs`` with its umid shares the key and joins the same entry.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ..server_util import Server, fresh_connections
from .conftest import SMS_STOP, assert_verifies, head, log_keys, msisdn, positions, sms

pytestmark = pytest.mark.slow

WEBHOOKS = 40
DELIVERIES = 5
OFFSETS_S = (0.0, 0.0, 0.010, 0.050, 0.150)
"""When each delivery of one webhook is sent, after the first (plus random jitter): two at the
very same moment, the others while the first may still be committing or just after."""
JITTER_S = 0.005
TEXTS = ("STOP", "START", "HELP", "stop the deliveries to my office please", "STOP ALL")
EXPECTED = {"STOP": "opted_out", "START": "opted_in", "HELP": "help", "STOP ALL": "opted_out"}


def scheduled(rng: random.Random) -> list[tuple[float, int, int]]:
    """(send time, webhook, delivery number) for every delivery, in time order."""
    plan = []
    for w in range(WEBHOOKS):
        start = w * 0.02 + rng.uniform(0, 0.02)
        plan += [(start + off + rng.uniform(0, JITTER_S), w, n) for n, off in enumerate(OFFSETS_S)]
    return sorted(plan)


def text_of(w: int) -> str:
    return TEXTS[w % len(TEXTS)]


def via_automation_builder(w: int, n: int) -> bool:
    """Every fourth STOP has its last delivery relayed by an Automation Builder HTTP step."""
    return text_of(w) == "STOP" and w % 4 == 0 and n == DELIVERIES - 1


def deliver(http: httpx.Client, w: int, n: int, t0: float, at: float) -> tuple[int, int, Any]:
    """Send delivery ``n`` of webhook ``w`` at ``t0 + at`` on a connection of its own."""
    time.sleep(max(0.0, t0 + at - time.monotonic()))
    umid = f"retry-{w:03d}"
    if via_automation_builder(w, n):
        relayed = {
            "msisdn": msisdn(500_000 + w),
            "subaccount": "ACME_MKT",
            "text": "STOP",
            "umid": umid,
            "occurred_at": SMS_STOP["payload"]["timestamp"],
        }
        r = http.post("/v1/opt-outs", json=relayed)
    else:
        body = sms(umid, msisdn(500_000 + w), text=text_of(w))
        r = http.post("/v1/webhooks/8x8", content=body)
    return w, r.status_code, r.json()


def test_five_deliveries_of_each_webhook_make_one_entry(server: Server) -> None:
    assert server.key is not None
    answers: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    with fresh_connections(server) as http, ThreadPoolExecutor(max_workers=24) as pool:
        warm = http.post("/v1/webhooks/8x8", content=sms("retry-warm-up", msisdn(499_999)))
        assert warm.status_code == 200  # registers ACME_MKT: each entry below is one webhook's
        before = head(server.db)
        t0 = time.monotonic() + 0.2
        plan = scheduled(random.Random(5))
        futures = [pool.submit(deliver, http, w, n, t0, at) for at, w, n in plan]
        for future in futures:
            w, status, body = future.result(timeout=60)
            answers[w].append((status, body))

    for w in range(WEBHOOKS):
        got = answers[w]
        assert len(got) == DELIVERIES
        statuses = sorted(status for status, _ in got)
        assert statuses in ([200] * DELIVERIES, [200] * (DELIVERIES - 1) + [201]), (w, got)
        assert len({body["position"] for _, body in got}) == 1, (w, got)
        assert sorted(body["duplicate"] for _, body in got) == [False] + [True] * 4, (w, got)
        if text_of(w) in EXPECTED:
            assert {body["outcome"] for _, body in got} == {EXPECTED[text_of(w)]}, (w, got)
    keys = log_keys(server.db)
    assert all(keys[f"8x8:retry-{w:03d}"] == 1 for w in range(WEBHOOKS))
    assert head(server.db) == before + WEBHOOKS
    assert positions(server.db) == list(range(1, before + WEBHOOKS + 1))
    assert_verifies(server.db)
