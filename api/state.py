"""What a running app holds: the ledger, the settings it was started with, the signing key."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from api.settings import Settings
from api.signing import signer_for
from ledger.checkpoint import Signer
from projections.ledger import ConsentLedger

_SIGNER_LOCK = threading.Lock()  # not a field: the services are injected by type


@dataclass
class Services:
    """Per-process services, opened on start-up and closed on shutdown."""

    settings: Settings
    ledger: ConsentLedger
    signer: Signer | None = None
    """The checkpoint signer, once loaded (see ``get_signer``)."""

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
    """The services of a running Litestar app."""
    services: Services = app.state.services
    return services
