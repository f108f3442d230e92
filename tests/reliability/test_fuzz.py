"""Fuzzing: ``schemathesis run`` against the running server's own OpenAPI schema, every operation.

Each operation gets its documented examples, schemathesis's coverage cases (boundaries, values
just out of range, missing and wrong-typed fields, unexpected methods) and random valid and
invalid inputs, sent with a valid key — the tenant admin key with every scope, or an operator
key for the operator-only routes (``fuzz_hooks.py`` picks it). Every answer must not be a 5xx,
must have a documented status and content type, and must match its documented schema (problem
details for errors) and headers.

"The log holds nothing that was refused" is checked exactly, not estimated: requests go one at a
time and nothing else writes, so the hooks read the log head from the database file before and
after each request. An answer other than 2xx must leave the head where it was; a 2xx that names
a new entry's position must have grown the head to include it; and every entry the fuzzing added
was added by a request answered 2xx. Afterwards the whole database passes ``verify``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import ROUTE_MODULES
from api.keys import SCOPES, create_key
from ledger.sqlite.connection import connect
from ledger.sqlite.keys import SqliteKeys

from ..server_util import Server, fresh_connections, start_server, stop_server
from .conftest import assert_verifies, head, sms

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
MAX_EXAMPLES = 100
"""Random examples per operation and generation mode (on top of the documented examples and
the coverage cases)."""
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def operator_only() -> list[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every route that needs an operator key."""
    found = set()
    for module in ROUTE_MODULES:
        for handler in module.ROUTES:
            if handler.opt.get("operator"):
                for path in handler.paths:
                    template = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
                    found |= {(m.upper(), template) for m in handler.http_methods}
    return sorted(found)


def seed(server: Server) -> None:
    """Give the fuzzer something to find: entries of every kind and an open review item."""
    with fresh_connections(server) as http:
        texts = ["STOP", "START", "please stop the van at gate 5", "HELP", "INFO"]
        for i, text in enumerate(texts):
            r = http.post("/v1/webhooks/8x8", content=sms(f"fuzz-seed-{i}", "+6581968289", text))
            assert r.status_code == 200
        r = http.post("/v1/opt-outs", json={"msisdn": "+6581968289", "subaccount": "STOP"})
        assert r.status_code == 201  # the tutorial's body: unresolved, queued for review
        assert r.json()["position"] == 7  # what the schema's example resolves


def run_schemathesis(server: Server, operator_key: str, record: Path) -> None:
    assert server.key is not None
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "FUZZ_DB": str(server.db),
        "FUZZ_RECORD": str(record),
        "FUZZ_TENANT_KEY": server.key,
        "FUZZ_OPERATOR_KEY": operator_key,
        "FUZZ_OPERATOR_ROUTES": json.dumps(operator_only()),
    }
    command = [
        str(SCHEMATHESIS),
        "run",
        server.url + "/schema/openapi.json",
        f"--checks={CHECKS}",
        "--phases=examples,coverage,fuzzing",
        "--mode=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--seed=5",
        "--workers=1",
        "--no-shrink",
        "--request-timeout=30",
        "--suppress-health-check=all",
    ]
    done = subprocess.run(
        command, env=env, cwd=record.parent, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"schemathesis found failures:\n{done.stdout[-20000:]}"


def test_fuzzing_every_operation_finds_no_failure_and_refusals_write_nothing(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "server", workers=2)
    record = tmp_path / "requests.jsonl"
    try:
        assert server.key is not None
        conn = connect(server.db)
        operator_key = create_key(
            SqliteKeys(conn), tenant=None, scopes=list(SCOPES), label="fuzz operator"
        )
        conn.close()
        seed(server)
        start = head(server.db)
        run_schemathesis(server, operator_key, record)
        end = head(server.db)
    finally:
        stop_server(server)

    requests = [json.loads(line) for line in record.read_text().splitlines()]
    operations = {(r["method"], r["path"]) for r in requests}
    assert len(operations) >= 23, sorted(operations)  # every operation was exercised
    assert not [r for r in requests if r["status"] >= 500]
    refused_but_written = [
        r for r in requests if not 200 <= r["status"] < 300 and r["after"] != r["before"]
    ]
    assert not refused_but_written, refused_but_written[:5]
    unacknowledged = [
        r
        for r in requests
        if r["position"] is not None and not r["before"] < r["position"] <= r["after"]
    ]
    assert not unacknowledged, unacknowledged[:5]
    grown = sum(r["after"] - r["before"] for r in requests)
    assert grown == end - start, "the log grew between requests"
    assert any(r["after"] > r["before"] for r in requests), "the fuzzing never appended"
    report = assert_verifies(server.db)
    assert report["entries"] == end
