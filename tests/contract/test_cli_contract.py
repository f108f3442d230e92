"""Every command of the command line works the same on every engine: the tour of an operator's
day (set up, record, check, rebuild, sign, verify, hand out evidence) against ``--db`` naming
the engine's store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main

from .conftest import Engine


def run(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    """Run one command; its JSON lines (the command must succeed)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, f"{args[0]}: {err}"
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_operators_day_on_every_engine(
    capsys: pytest.CaptureFixture[str], engine: Engine, tmp_path: Path
) -> None:
    db = ("--db", engine.location)
    key = str(tmp_path / "signing-key")
    assert main(["signing-key", "new", "--out", key]) == 0
    verifier = capsys.readouterr().out.strip()
    signing = ("--signing-key", key)
    run(capsys, "init", *db)
    run(capsys, "subaccount", "set", "ACME", "--region", "US", *db)
    recorded = run(capsys, "record", *db, "--subaccount", "ACME", "--msisdn", "2025550123",
                   "--action", "opt_out", "--text", "STOP")  # fmt: skip
    assert recorded[0]["outcome"] == "opted_out"
    decision = run(capsys, "check", *db, "--subaccount", "ACME", "2025550123")[0]
    assert decision["allowed"] is False
    assert run(capsys, "history", *db, "+12025550123")[0]["type"] == "consent.revoked"
    assert run(capsys, "rebuild", *db)[0]["replayed"] == 2
    run(capsys, "keys", "create", "--scopes", "ingest", *db)
    assert run(capsys, "checkpoint", *db, *signing)[0]["size"] == 2
    assert run(capsys, "verify", *db, "--key", verifier)[0]["ok"] is True
    bundle = str(tmp_path / "bundle.json")
    run(capsys, "evidence", *db, *signing, "--subaccount", "ACME", "-o", bundle, "2025550123")
    assert main(["verify-bundle", "--key", verifier, bundle]) == 0
    capsys.readouterr()
    assert main(["export", *db, "--subaccount", "ACME", "--quiet"]) == 0
    assert "+12025550123" in capsys.readouterr().out
