"""schemathesis hooks for ``test_fuzz.py`` (loaded by ``schemathesis run`` from
``SCHEMATHESIS_HOOKS``; not a test module).

Before each request: pick the key (the operator key for operator-only routes, else the tenant
key with every scope) and read the log head from the database file. After it: read the head
again and append one JSON line per request — method, path, status, head before and after, the
new position the answer names — to ``FUZZ_RECORD``. Requests go one at a time (``-w 1``) and
nothing else writes, so a request's head difference is exactly what that request appended.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

import schemathesis

DB = os.environ["FUZZ_DB"]
RECORD = os.environ["FUZZ_RECORD"]
TENANT_KEY = os.environ["FUZZ_TENANT_KEY"]
OPERATOR_KEY = os.environ["FUZZ_OPERATOR_KEY"]
OPERATOR_ROUTES = {tuple(r) for r in json.loads(os.environ["FUZZ_OPERATOR_ROUTES"])}
_heads: dict[int, int] = {}


def head() -> int:
    """The newest committed position, read from the file (0 when empty)."""
    conn = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0])
    finally:
        conn.close()


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Authenticate with the right key; remember the head."""
    operator = (case.operation.method.upper(), case.operation.path) in OPERATOR_ROUTES
    case.headers = {
        **(case.headers or {}),
        "Authorization": f"Bearer {OPERATOR_KEY if operator else TENANT_KEY}",
    }
    _heads[id(case)] = head()


@schemathesis.hook
def after_call(context: Any, case: schemathesis.Case, response: schemathesis.Response) -> None:
    """Record what this request did to the log."""
    position = None
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("duplicate") is False:
            position = body.get("position")
    line = {
        "method": case.operation.method.upper(),
        "path": case.operation.path,
        "status": response.status_code,
        "before": _heads.pop(id(case)),
        "after": head(),
        "position": position,
    }
    with open(RECORD, "a") as out:
        out.write(json.dumps(line) + "\n")
