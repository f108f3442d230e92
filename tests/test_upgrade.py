"""A database made before storage moved behind ports (migrations then shipped flat in
``migrations/``, now in ``migrations/sqlite/``) opens without manual steps and verifies.

``fixtures/pre-ports.db`` was written by that code: tenant ``acme``, a subaccount, six messages
with evidence, two checkpoints, a retraction, one erased evidence and an API key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.cli import main
from ledger.migrate import shipped_migrations
from ledger.sqlite.connection import connect
from ledger.sqlite.migrate import applied, pending
from projections.ledger import ConsentLedger

FIXTURE = Path(__file__).parent / "fixtures" / "pre-ports.db"
VERIFIER_KEY = "consent-ledger+a2862084+Ad9EW/iOZiLGdSe/QpT8SOJ+DbLGxMZcBWiJ/LMKk/pd"
HEAD = 8


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    shutil.copyfile(FIXTURE, path)
    return path


def test_its_applied_migrations_are_the_shipped_ones_by_name_and_checksum(old_db: Path) -> None:
    conn = connect(old_db)
    try:
        shipped = {m.name: m.checksum for m in shipped_migrations()}
        assert applied(conn).items() <= shipped.items()  # a prefix, unchanged since applied
        assert [m.name for m in pending(conn)] == sorted(shipped.keys() - applied(conn).keys())
    finally:
        conn.close()
    ConsentLedger(old_db).close()  # opening applies the rest
    conn = connect(old_db)
    try:
        assert pending(conn) == []
    finally:
        conn.close()


def test_it_verifies(capsys: pytest.CaptureFixture[str], old_db: Path) -> None:
    ConsentLedger(old_db).close()  # opened (and so migrated) by its first use after the upgrade
    capsys.readouterr()
    code = main(["verify", "--db", str(old_db), "--key", VERIFIER_KEY])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 0, err
    assert report["ok"] is True
    assert report["entries"] == HEAD


def test_it_opens_and_takes_appends(capsys: pytest.CaptureFixture[str], old_db: Path) -> None:
    ledger = ConsentLedger(old_db)
    try:
        assert ledger.head() == HEAD
        ledger.configure_subaccount("acme", "ACME_ALERTS", actor="test")
        assert ledger.head() == HEAD + 1
    finally:
        ledger.close()
    capsys.readouterr()
    assert main(["verify", "--db", str(old_db), "--key", VERIFIER_KEY]) == 0
