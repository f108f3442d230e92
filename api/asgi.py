"""The ASGI entry point of server worker processes: ``uvicorn --factory api.asgi:create``.

Guarantees: a worker's app is configured only from ``CONSENT_LEDGER_*`` environment variables
(``Settings.from_env``), which ``consent-ledger serve`` sets before any worker starts; once it
has started, everything it has loaded is moved out of the garbage collector's sight
(``settle_heap``) and the interpreter hands its lock between threads sooner
(``SWITCH_INTERVAL``).
"""

from __future__ import annotations

import gc
import sys

from litestar import Litestar

from api.app import create_app
from api.settings import Settings

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the interpreter lock while another waits for it (Python's default
is 0.005). Under load the event loop thread rarely lets go of the lock on its own, so a read-lane
or writer thread coming back from SQLite waits up to a whole interval for it; a shorter interval
hands the lock over sooner (the README's performance section has the measured effect)."""


def create() -> Litestar:
    """This worker's app, from the settings in the environment."""
    app = create_app(Settings.from_env())
    app.on_startup.extend([settle_heap, hand_off_sooner])
    return app


def hand_off_sooner() -> None:
    """Set this process's thread switch interval to ``SWITCH_INTERVAL``."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def settle_heap() -> None:
    """Collect once, then freeze what survives (the app, its schema, the libraries' tables).

    Python's full collections walk every tracked object; in a started worker that is hundreds
    of thousands of objects that live as long as the process, and each full collection paused
    the event loop long enough to set the p99 latency of a single decision under load (see the
    README's performance section). Frozen objects are never walked again, so later collections
    cost only what requests allocate.
    """
    gc.collect()
    gc.freeze()
