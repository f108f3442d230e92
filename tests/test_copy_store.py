"""``consent-ledger copy-store``: a whole store copied into an empty one (any engine to any
engine) holds the same entries byte for byte, the same evidence (erasures included), tree root,
checkpoints, keys and quarantined bodies, and verifies; a non-empty destination is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.cli import main
from api.quarantine import Received, keep
from ledger.location import parse_location
from projections.engine import open_engine
from projections.ledger import ConsentLedger

FIXTURE = Path(__file__).parent / "fixtures" / "pre-ports.db"
VERIFIER_KEY = "consent-ledger+a2862084+Ad9EW/iOZiLGdSe/QpT8SOJ+DbLGxMZcBWiJ/LMKk/pd"


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A store with entries, evidence (one erased), checkpoints, a key and a quarantined body."""
    path = tmp_path / "source.db"
    shutil.copyfile(FIXTURE, path)
    ledger = ConsentLedger(path)
    try:
        keep(ledger.store, "acme", "not JSON", b"\x00garbage", Received(received_at=ledger.now()))
    finally:
        ledger.close()
    return str(path)


def _everything(location: str) -> dict[str, object]:
    engine = open_engine(parse_location(location))
    try:
        with engine.images.read() as image:
            entries = image.entries(0, 1 << 30)
            records = image.records()
            return {"head": image.head(), "root": image.root(), "entries": entries,
                    "records": records}  # fmt: skip
    finally:
        engine.store.close()


def _copy(capsys: pytest.CaptureFixture[str], source: str, target: str) -> dict[str, object]:
    capsys.readouterr()
    code = main(["copy-store", "--from", source, "--to", target, "--key", VERIFIER_KEY])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "copy-store:" in err  # progress on stderr
    summary: dict[str, object] = json.loads(out)
    return summary


def test_a_copy_holds_everything_and_verifies(
    capsys: pytest.CaptureFixture[str], source: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "copy.db")
    summary = _copy(capsys, source, target)
    assert summary["verified"] is True
    assert summary["signatures_checked"] is True
    assert summary["checkpoints"] == 2
    assert summary["quarantined"] == 1
    assert _everything(target) == _everything(source)
    assert main(["verify", "--db", target, "--key", VERIFIER_KEY]) == 0


def test_a_non_empty_destination_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str], source: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "copy.db")
    _copy(capsys, source, target)
    before = _everything(target)
    assert main(["copy-store", "--from", source, "--to", target]) == 1
    assert "not empty" in capsys.readouterr().err
    assert _everything(target) == before


def test_sqlite_to_postgresql_and_back_holds_the_same_bytes(
    capsys: pytest.CaptureFixture[str], source: str, pg_url: str, tmp_path: Path
) -> None:
    summary = _copy(capsys, source, pg_url)
    assert summary["verified"] is True
    assert summary["to"] == pg_url  # no password in this URL; masking is tested below
    assert _everything(pg_url) == _everything(source)
    back = str(tmp_path / "back.db")
    _copy(capsys, pg_url, back)
    assert _everything(back) == _everything(source)


def test_a_copy_on_postgresql_takes_appends_and_verifies_again(
    capsys: pytest.CaptureFixture[str], source: str, pg_url: str
) -> None:
    _copy(capsys, source, pg_url)
    ledger = ConsentLedger(pg_url)
    try:
        before = ledger.head()
        ledger.configure_subaccount("acme", "ACME_ALERTS", actor="test")
        assert ledger.head() == before + 1
        assert ledger.maintenance.matches_rebuild()
    finally:
        ledger.close()
    capsys.readouterr()
    assert main(["verify", "--db", pg_url, "--key", VERIFIER_KEY]) == 0


def test_copy_store_masks_a_password_in_what_it_prints(
    capsys: pytest.CaptureFixture[str], source: str, pg_url: str
) -> None:
    with_password = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    summary = _copy(capsys, source, with_password)  # trust auth: the password is not checked
    assert summary["to"] == with_password.replace(":s3cret@", ":***@")
    assert "s3cret" not in json.dumps(summary)
