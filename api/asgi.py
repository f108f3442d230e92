"""The ASGI entry point of server worker processes: ``uvicorn --factory api.asgi:create``.

Guarantees: a worker's app is configured only from ``CONSENT_LEDGER_*`` environment variables
(``Settings.from_env``), which ``consent-ledger serve`` sets before any worker starts.
"""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from api.settings import Settings


def create() -> Litestar:
    """This worker's app, from the settings in the environment."""
    return create_app(Settings.from_env())
