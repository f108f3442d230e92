"""The checkpoint signing key of a deployment: kept outside the database (SQLite: generated
on first start beside it; PostgreSQL: made by the operator, ``signing-key new``)."""

from __future__ import annotations

from api.settings import Settings
from ledger.checkpoint import Signer, load_or_create_signing_key, load_signing_key
from ledger.files import make_private_dir


def signer_for(settings: Settings) -> Signer:
    """The signer named after the log's origin, from ``settings.signing_key_path`` (0600).

    For SQLite the key file is created on first use (its directory, if missing, 0700); for a
    database URL it must exist (``InvalidInput`` otherwise). The same file always gives the
    same verifier key.
    """
    path = settings.signing_key_path
    if not settings.creates_signing_key:
        return load_signing_key(path, settings.origin)
    make_private_dir(path.parent)
    return load_or_create_signing_key(path, settings.origin)
