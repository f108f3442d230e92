"""The compliance console's number page, timed in-process on the benchmark's log.

Server time of one page: the look-up (``api.console.pages.number_context``: decisions and
timelines for every subaccount, the entries and their evidence, the SVG drawing) and the
template rendered to HTML, as the page handler does; HTTP, the session look-up and the network
are left out (the HTTP rows cover those costs for the API's routes). The settled heap is frozen
first, as in a server worker, so a full garbage collection of the loader's objects is not
counted against one page.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

from load import AUDIT_NUMBER, TENANT

from api.console import environment
from api.console.pages import number_context
from api.console.session import ConsoleUser
from api.keys import Principal
from projections.ledger import ConsentLedger


def number_page(db: Path, runs: int = 200) -> dict[str, Any]:
    """p50, p99 and max milliseconds of rendering ``AUDIT_NUMBER``'s page (national digits, as
    a person types them), over ``runs`` renders after one warm-up."""
    ledger = ConsentLedger(db)
    template = environment().get_template("number.html.j2")
    user = ConsoleUser(Principal("bench0000000", TENANT, frozenset({"audit"})), "csrf", "")
    form = {"q": AUDIT_NUMBER[3:], "subaccount": "", "at": "", "known_at": ""}

    def render() -> str:
        status, context = number_context(ledger, TENANT, form)
        assert status == 200, context.get("error")
        return template.render(user=user, path="/console/number", **context)

    try:
        html = render()
        gc.collect()
        gc.freeze()  # as a server worker does once started (api/asgi.py)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            render()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        ledger.close()
    times.sort()
    return {
        "runs": runs,
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "max_ms": times[-1],
        "html_bytes": len(html.encode()),
        "entries_shown": html.count('class="entry"'),
    }
