"""The reply dispatcher inside the service: one thread per worker process, one active dispatcher
per deployment (the lease of job ``replies``).

Guarantees: with ``reply_dispatch`` ``on`` (the default) and an 8x8 API key in the environment
(``api.eightxeight.credentials``), every worker runs a dispatcher thread; only the lease holder
sends. Without a key nothing is dispatched (a line in the log says so; replies not sent in time
are recorded ``expired`` once a dispatcher runs). Leaving stops the thread after the calls under
way.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import structlog

from api.eightxeight import credentials
from api.eightxeight.dispatcher import Dispatcher, run
from api.state import Services
from ledger.errors import InvalidInput

log = structlog.get_logger("consent_ledger.replies")


@asynccontextmanager
async def dispatching(services: Services) -> AsyncIterator[Dispatcher | None]:
    """While inside: the dispatcher runs in a thread of its own (see the module)."""
    if services.settings.reply_dispatch != "on":
        yield None
        return
    try:
        key = credentials.api_key()
    except InvalidInput as exc:
        log.info("replies are not dispatched from this process", reason=str(exc))
        yield None
        return
    dispatcher = Dispatcher(services.ledger, api_key=key)
    stop = threading.Event()
    thread = threading.Thread(
        target=run, args=(dispatcher, stop), daemon=True, name="consent-ledger-replies"
    )
    thread.start()
    try:
        yield dispatcher
    finally:
        stop.set()
        await anyio.to_thread.run_sync(thread.join)
        await anyio.to_thread.run_sync(dispatcher.close)
