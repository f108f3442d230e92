"""What a running app holds: the ledger, the settings it was started with, the signing key, and
where its synchronous work runs off the event loop (the read lane, the intake lane, the writer
pool)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from api.lanes import BatchLane, Lane
from api.settings import Settings
from api.signing import signer_for
from ledger.checkpoint import Signer
from projections.ledger import ConsentLedger

_SIGNER_LOCK = threading.Lock()  # not a field: the services are injected by type
T = TypeVar("T")


@dataclass
class Services:
    """Per-process services, opened on start-up and closed on shutdown."""

    settings: Settings
    ledger: ConsentLedger
    lane: Lane | None = None
    """Where point reads run (see ``read``); set while the app runs."""
    writers: ThreadPoolExecutor | None = None
    """Where the API's appends run (see ``write``); set while the app runs."""
    intake_lane: BatchLane[Any, Any] | None = None
    """Where 8x8 webhooks are recorded, a batch at a time (see ``intake``); set while the app
    runs."""
    signer: Signer | None = None
    """The checkpoint signer, once loaded (see ``get_signer``)."""

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a short read (one number, one key), on the lane: off the event loop."""
        assert self.lane is not None, "the app is not running"
        return await self.lane.call(fn, *args)

    async def intake(self, hook: Any) -> Any:
        """Record one webhook (``api.routes.intake.Hook``) with the others waiting now: each
        read and classified alone, all appended in one group commit, on the intake lane."""
        assert self.intake_lane is not None, "the app is not running"
        return await self.intake_lane.submit(hook)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, an append, on the writer pool: off the event loop, concurrently with
        other appends, which the store groups into one durable commit."""
        return await asyncio.get_running_loop().run_in_executor(self.writers, fn, *args)

    def get_signer(self) -> Signer:
        """The checkpoint signer: loaded (the key file created on first use) once, then cached.

        Raises ``InvalidInput`` when the key file exists but is unusable (wrong mode, not an
        Ed25519 key); the next call tries again.
        """
        if self.signer is None:
            with _SIGNER_LOCK:
                if self.signer is None:
                    self.signer = signer_for(self.settings)
        return self.signer


def services_of(app: Any) -> Services:
    """The services of a running Litestar app.

    Routes get them by dependency injection; the hot routes (the webhook, single decisions)
    call this instead: resolving a dependency on every request is a measurable share of a
    decision's whole cost (the README's performance section has the figure)."""
    services: Services = app.state.services
    return services
