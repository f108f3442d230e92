"""The checkpoint signing key of a deployment: generated on first start, kept outside the DB."""

from __future__ import annotations

from api.settings import Settings
from ledger.checkpoint import Signer, load_or_create_signing_key
from ledger.files import make_private_dir


def signer_for(settings: Settings) -> Signer:
    """The signer named after the log's origin, from ``settings.signing_key_path`` (0600).

    The key file is created on first use (its directory, if missing, 0700); the same file
    always gives the same verifier key.
    """
    path = settings.signing_key_path
    make_private_dir(path.parent)
    return load_or_create_signing_key(path, settings.origin)
