"""The daily evidence-retention run of the service (docs/adopting.md).

Guarantees: while the app runs, retention is applied for every tenant that has a period about
once per ``Settings.retention_interval`` seconds (0: never; the CLI's ``retention apply`` still
works), by one process of the deployment only — the holder of the ``retention`` lease
(``ledger.runner``); a failure is logged and retried at the next run, never raised into the app.
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
import structlog

from api.state import Services
from projections.retention import RetentionRun, apply_everywhere

FIRST_RUN_AFTER = 60.0
"""Seconds after start-up before the first run (start-up work first)."""
ACTOR = "service:retention"

log = structlog.get_logger("consent_ledger.retention")


def run_once(services: Services) -> list[RetentionRun] | None:
    """Apply retention everywhere if this process holds the lease (``None`` when not)."""
    ledger = services.ledger
    if not ledger.store.lease("retention").held():
        return None
    runs = apply_everywhere(ledger, actor=ACTOR)
    for run in runs:
        if run.erased:
            log.info("retention applied", tenant=run.tenant, erased=run.erased,
                     superseded_before=run.superseded_before)  # fmt: skip
    return runs


async def _loop(services: Services, interval: float) -> None:
    await anyio.sleep(min(FIRST_RUN_AFTER, interval))
    while True:
        try:
            await anyio.to_thread.run_sync(run_once, services)
        except Exception as exc:
            log.error("retention failed", error=repr(exc), traceback=traceback.format_exc())
        await anyio.sleep(interval)


@asynccontextmanager
async def retention(services: Services) -> AsyncIterator[None]:
    """While inside, retention runs in the background (see the module)."""
    interval = services.settings.retention_interval
    async with anyio.create_task_group() as group:
        if interval > 0:
            group.start_soon(_loop, services, interval, name="retention")
        try:
            yield
        finally:
            group.cancel_scope.cancel()
