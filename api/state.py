"""What a running app holds: the ledger and the settings it was started with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.settings import Settings
from projections.ledger import ConsentLedger


@dataclass
class Services:
    """Per-process services, opened on start-up and closed on shutdown."""

    settings: Settings
    ledger: ConsentLedger


def services_of(app: Any) -> Services:
    """The services of a running Litestar app."""
    services: Services = app.state.services
    return services
