"""Where the 8x8 API key and hosts come from: the environment or a file, never the ledger.

Guarantees: the key is read from ``CONSENT_LEDGER_8X8_API_KEY`` or from the file
``CONSENT_LEDGER_8X8_API_KEY_FILE`` names (first line, trimmed); it is never stored in the log,
the database, an answer or a log line (``masked`` is what may be shown); a missing key is an
``InvalidInput`` saying how to provide it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ledger.errors import InvalidInput

KEY_ENV = "CONSENT_LEDGER_8X8_API_KEY"
KEY_FILE_ENV = "CONSENT_LEDGER_8X8_API_KEY_FILE"

AUTOMATION_URL = "https://automation.8x8.com"
SMS_HOSTS: Mapping[str, str] = {
    "ap": "https://sms.8x8.com",
    "us": "https://sms.us.8x8.com",
    "eu": "https://sms.8x8.uk",
    "id": "https://sms.8x8.id",
}
CONTACTS_HOSTS: Mapping[str, str] = {
    "ap": "https://contacts.8x8.com",
    "us": "https://contacts.us.8x8.com",
    "eu": "https://contacts.8x8.uk",
    "id": "https://contacts.8x8.id",
}
OVERRIDE_ENV = "CONSENT_LEDGER_8X8_URL"
"""One base URL for every 8x8 API (the local fake: ``consent-ledger 8x8 fake``)."""


def api_key(environ: Mapping[str, str] | None = None) -> str:
    """The 8x8 API key (see the module guarantees)."""
    env = os.environ if environ is None else environ
    key = env.get(KEY_ENV, "").strip()
    if not key and env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV]).expanduser()
        try:
            key = path.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the 8x8 API key from {path}: {exc}") from exc
    if not key:
        raise InvalidInput(f"no 8x8 API key: set {KEY_ENV}, or {KEY_FILE_ENV} to a file holding it")
    return key


def masked(key: str) -> str:
    """What may be shown of a key: its last four characters."""
    return "****" + key[-4:] if len(key) > 8 else "****"


def base_url(default: str, environ: Mapping[str, str] | None = None) -> str:
    """``default``, unless ``CONSENT_LEDGER_8X8_URL`` points every API elsewhere."""
    env = os.environ if environ is None else environ
    return (env.get(OVERRIDE_ENV) or default).rstrip("/")
