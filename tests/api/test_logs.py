"""What the log shows of an unexpected error: a plain traceback, never locals, secrets or numbers.

Each format is tried in its own process: structlog is configured once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MSISDN = "+6581968289"

# A bug deep in a decision, with the caller's key and the full number in local variables (and
# the number in the exception's own text), answered as a 500.
PROVOKE_A_500 = """
import sys
from pathlib import Path
from litestar.testing import TestClient
from api.app import create_app
from api.keys import create_key
from ledger.sqlite.keys import SqliteKeys
from api.settings import Settings
from ledger.sqlite.connection import connect
from projections.ledger import ConsentLedger

def decide(self, tenant, subaccount, msisdn, **_):
    rows = {}
    return rows[msisdn]  # KeyError('+6581968289')

ConsentLedger.decide = decide
settings = Settings(db=Path(sys.argv[2]), log_format=sys.argv[1], checkpoint_interval=0)
with TestClient(create_app(settings), raise_server_exceptions=False) as client:
    conn = connect(settings.db)
    key = create_key(SqliteKeys(conn), tenant="default", scopes=["check"])
    conn.close()
    r = client.get("/v1/consent/ACME_MKT/%2B6581968289", headers={"Authorization": "Bearer " + key})
    print(key)
    print(r.status_code)
    print(r.text)
"""


def provoke(fmt: str, tmp_path: Path) -> tuple[str, int, dict[str, object], str]:
    """(key, status, problem body, everything logged) of one 500 in log format ``fmt``."""
    done = subprocess.run(
        [sys.executable, "-c", PROVOKE_A_500, fmt, str(tmp_path / "ledger.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key, status, body = done.stdout.splitlines()
    return key, int(status), json.loads(body), done.stderr


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_an_unexpected_error_logs_no_locals_no_key_secret_no_full_number(
    fmt: str, tmp_path: Path
) -> None:
    key, status, body, logged = provoke(fmt, tmp_path)
    assert status == 500
    secret = key.split("_", 2)[2]
    assert "KeyError" in logged  # the traceback is there
    assert "Traceback (most recent call last)" in logged
    assert secret[:8] not in logged
    assert "6581968289" not in logged
    assert "+65****8289" in logged  # the number in the exception's text, masked
    assert "locals" not in logged.lower()
    assert len(logged.splitlines()) < 150  # a plain traceback, not every frame's variables
    # the answer names the request whose log lines explain it
    assert body["request_id"]
    assert f"request_id={body['request_id']}" in logged or body["request_id"] in logged


def test_redact_masks_numbers_and_cuts_key_secrets() -> None:
    from api.logs import redact

    key = "cl_0123456789ab_" + "S3cr3t-" * 6
    text = f"KeyError('+6581968289') for {key}; 006581968289 %2B6581968289 6581968289"
    shown = redact(text)
    assert "S3cr3t" not in shown
    assert "cl_0123456789ab_…" in shown
    assert "6581968289" not in shown
    assert "+65****8289" in shown
    assert "%2B65****8289" in shown
    # what is not a number stays: times, request ids, short counts
    kept = "2026-03-02T09:15:27.431Z req 39ef21dcdc0f88ada72fa18e15f9466f, 12 rows, line 421"
    assert redact(kept) == kept


@pytest.mark.parametrize(
    "given",
    ["", "a b", "x" * 65, "id\u00e9", "line\nbreak", "\u202e-evil"],
    ids=["empty", "space", "too-long", "non-ascii", "newline", "bidi"],
)
def test_a_request_id_that_is_not_printable_and_bounded_is_replaced(given: str) -> None:
    """The client's X-Request-ID is stored as evidence and logged: only a bounded, printable
    one is kept."""
    from api.request_ids import chosen

    kept = chosen(given.encode("utf-8"))
    assert kept != given
    assert len(kept) == 32
    assert chosen(b"req-42/abc") == "req-42/abc"
