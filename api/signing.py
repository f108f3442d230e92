"""The checkpoint signing key of a deployment: generated on first start, kept outside the DB."""

from __future__ import annotations

from api.settings import Settings
from ledger.checkpoint import Signer, load_or_create_signing_key


def signer_for(settings: Settings) -> Signer:
    """The signer named after the log's origin, from ``settings.signing_key_path`` (0600).

    The key file is created on first use; the same file always gives the same verifier key.
    """
    path = settings.signing_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return load_or_create_signing_key(path, settings.origin)
