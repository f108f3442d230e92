"""``consent-ledger verify`` against a database an attacker edited with direct file access.

Each test builds a small real database (entries with evidence, projections, tree and signed
checkpoints), edits the SQLite file the way someone holding the file could (dropping the
immutability triggers first), and runs the CLI: it must exit non-zero and name the right
position. A clean database verifies.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.cli import main
from ledger import merkle
from ledger.checkpoint import Checkpoint, Signer, checkpoint_body, load_or_create_signing_key
from ledger.entries import Evidence
from ledger.events import ConsentGranted, ConsentRevoked, HelpRequested
from ledger.store import Draft
from ledger.tree import node_key
from ledger.verify import MAX_PROBLEMS, Report
from projections.ledger import ConsentLedger

ORIGIN = "consent-ledger"
ENTRIES = 40  # 2 configuration entries, then 38 messages
MIDDLE = 20  # a checkpoint is signed at this size, and one at ENTRIES


@dataclass
class Db:
    """A verified-clean database and the signer of its checkpoints."""

    path: Path
    signer: Signer

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        """Run statements directly on the file, as an attacker would (no triggers, no FKs)."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement, params if "?" in statement else ())
        finally:
            conn.close()

    def value(self, query: str, params: tuple[object, ...] = ()) -> object:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(query, params).fetchone()[0]
        finally:
            conn.close()


def _drafts(start: int, count: int) -> list[Draft]:
    common = {"match": "exact", "channel": "sms", "method": "8x8-webhook", "actor": "data-subject"}
    out = []
    for i in range(start, start + count):
        sub = ("ACME_MKT", "ACME_ALERTS")[i % 2]
        kind = i % 3
        if kind == 0:
            event = ConsentRevoked(scope="subaccount", keyword="STOP", policy=f"{sub}@1", **common)  # type: ignore[arg-type]
        elif kind == 1:
            event = ConsentGranted(scope="subaccount", keyword="START", policy=f"{sub}@1", **common)  # type: ignore[arg-type]
        else:
            event = HelpRequested(keyword="HELP", policy=f"{sub}@1", **common)  # type: ignore[arg-type]
        text = event.keyword or ""
        out.append(
            Draft(
                tenant="default",
                key=f"8x8:umid-{i}",
                subaccount=sub,
                msisdn=f"+659000{i % 7:04d}",
                occurred_at=f"2026-03-02T09:{i // 60:02d}:{i % 60:02d}.000Z",
                event=event,
                evidence=Evidence(raw_body=f'{{"body":"{text}","n":{i}}}', text=text),
            )
        )
    return out


@pytest.fixture
def db(tmp_path: Path) -> Db:
    path = tmp_path / "ledger.db"
    signer = load_or_create_signing_key(path.with_name(path.name + ".signing-key"), ORIGIN)
    ledger = ConsentLedger(path)
    try:
        for sub in ("ACME_MKT", "ACME_ALERTS"):
            ledger.configure_subaccount("default", sub, actor="test")
        ledger.append(_drafts(0, MIDDLE - 2))
        assert ledger.sign_checkpoint(signer, ORIGIN) is not None
        ledger.append(_drafts(MIDDLE, ENTRIES - MIDDLE))
        assert ledger.sign_checkpoint(signer, ORIGIN) is not None
        assert ledger.head() == ENTRIES
    finally:
        ledger.close()
    return Db(path, signer)


def verify(
    capsys: pytest.CaptureFixture[str], db: Db, *extra: str
) -> tuple[int, dict[str, object], str]:
    """Run ``consent-ledger verify``: (exit code, JSON report, stderr)."""
    capsys.readouterr()
    code = main(["verify", "--db", str(db.path), *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def assert_caught(
    capsys: pytest.CaptureFixture[str], db: Db, position: int, words: str
) -> dict[str, object]:
    """``verify`` fails, names ``position`` first (JSON and stderr), and says ``words`` there."""
    code, report, err = verify(capsys, db)
    assert code == 1
    assert report["ok"] is False
    assert report["first_bad_position"] == position, report["problems"]
    assert f"FAILED at position {position}:" in err
    problems = report["problems"]
    assert isinstance(problems, list)
    at = [p["what"] for p in problems if p["position"] == position]
    assert any(words in what for what in at), at
    return report


def entry_bytes(db: Db, position: int) -> bytes:
    data = db.value("SELECT entry FROM log WHERE position = ?", (position,))
    assert isinstance(data, bytes)
    return data


def test_a_clean_database_verifies(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    code, report, err = verify(capsys, db)
    assert code == 0, err
    assert report["ok"] is True
    assert report["entries"] == ENTRIES
    assert report["evidence_checked"] == ENTRIES - 2
    assert report["checkpoints"] == 2
    assert report["signatures_checked"] is True
    assert report["verifier_key"] == db.signer.verifier_key
    assert report["projections_match_rebuild"] is True
    assert report["first_bad_position"] is None
    assert report["problems"] == []


def test_erased_evidence_still_verifies(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    ledger = ConsentLedger(db.path)
    ledger.store.erase_evidence(7, "data subject request")
    ledger.close()
    code, report, _ = verify(capsys, db)
    assert code == 0
    assert report["evidence_erased"] == 1


@pytest.mark.parametrize("position", [1, 13, MIDDLE, ENTRIES])
def test_one_edited_byte_of_an_entry_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db, position: int
) -> None:
    data = bytearray(entry_bytes(db, position))
    at = data.index(b'"occurred_at":"2026-') + len(b'"occurred_at":"202')
    data[at] = ord("5")  # 2026 -> 2025: still valid JSON, a different entry
    db.sql("DROP TRIGGER log_no_update", "UPDATE log SET entry = ? WHERE position = ?",
           params=(bytes(data), position))  # fmt: skip
    assert_caught(capsys, db, position, "leaf hash does not match the entry bytes")


def test_a_byte_that_breaks_the_json_is_caught(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    data = b"[" + entry_bytes(db, 9)[1:]
    db.sql("DROP TRIGGER log_no_update", "UPDATE log SET entry = ? WHERE position = 9",
           params=(data,))  # fmt: skip
    assert_caught(capsys, db, 9, "entry bytes do not decode")


def test_an_edited_entry_with_recomputed_hashes_is_caught_by_the_checkpoint(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    """The attacker rewrites the entry, its leaf hash and every tree node: only a signed
    checkpoint still remembers the old tree, and it names the range the edit lies in."""
    position = 25
    data = entry_bytes(db, position).replace(b'"data-subject"', b'"data-subjecT"')  # not projected
    conn = sqlite3.connect(db.path, isolation_level=None)
    conn.execute("DROP TRIGGER log_no_update")
    conn.execute("DROP TRIGGER tree_nodes_no_update")
    conn.execute("DROP TRIGGER tree_nodes_no_delete")
    conn.execute(
        "UPDATE log SET entry = ?, leaf_hash = ? WHERE position = ?",
        (data, merkle.leaf_hash(data), position),
    )
    conn.execute("DELETE FROM tree_nodes")
    leaves = [r[0] for r in conn.execute("SELECT entry FROM log ORDER BY position")]
    for i, leaf in enumerate(leaves):
        hashed = merkle.leaf_hash(leaf)
        get = lambda level, idx: conn.execute(  # noqa: E731
            "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, idx)
        ).fetchone()[0]
        conn.executemany(
            "INSERT INTO tree_nodes (node, level, idx, hash) VALUES (?, ?, ?, ?)",
            [(node_key(lv, ix), lv, ix, h) for lv, ix, h in merkle.completed_nodes(i, hashed, get)],
        )
    conn.close()
    report = assert_caught(capsys, db, ENTRIES, "root differs from the tree of the entries")
    problems = report["problems"]
    assert isinstance(problems, list)
    assert f"positions {MIDDLE + 1}..{ENTRIES}" in problems[0]["what"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("msisdn", "+6590009999"), ("tenant", "other"), ("recorded_at", "2030-01-01T00:00:00.000Z"),
     ("subaccount", None), ("type", "consent.granted")],
)  # fmt: skip
def test_an_edited_indexed_column_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db, column: str, value: object
) -> None:
    db.sql("DROP TRIGGER log_no_update", f"UPDATE log SET {column} = ? WHERE position = 12",
           params=(value,))  # fmt: skip
    assert_caught(capsys, db, 12, f"indexed column {column!r} differs from the entry bytes")


def test_deleting_the_last_entries_is_caught(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    db.sql("DROP TRIGGER log_no_delete", "DELETE FROM log WHERE position > 36")
    report = assert_caught(capsys, db, 37, "beyond the log's entries")
    assert report["entries"] == 36


def test_deleting_the_last_entries_and_every_trace_is_caught_by_the_checkpoint(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    """Entries, evidence, tree nodes and projection rows all removed: the checkpoint of 40
    entries still names the first missing position."""
    db.sql(
        "DROP TRIGGER log_no_delete",
        "DROP TRIGGER tree_nodes_no_delete",
        "DELETE FROM log WHERE position > 36",
        "DELETE FROM evidence WHERE position > 36",
        "DELETE FROM tree_nodes WHERE (idx + 1) * (1 << level) > 36",
        "DELETE FROM consent_facts WHERE position > 36",
        "DELETE FROM review_items WHERE position > 36",
        "UPDATE projection_positions SET position = 36",
    )
    assert_caught(capsys, db, 37, "covers entries the log no longer has")


def test_a_checkpoint_signed_by_another_key_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    root = db.value("SELECT root FROM checkpoints WHERE size = ?", (MIDDLE,))
    assert isinstance(root, bytes)
    forger = Signer(ORIGIN, Ed25519PrivateKey.generate())
    note = forger.sign_note(checkpoint_body(Checkpoint(ORIGIN, MIDDLE, root)))
    db.sql("DROP TRIGGER checkpoints_no_update", "UPDATE checkpoints SET note = ? WHERE size = ?",
           params=(note, MIDDLE))  # fmt: skip
    assert_caught(capsys, db, MIDDLE, f"checkpoint {MIDDLE}: note has no signature from key")


def test_a_checkpoint_with_the_right_key_but_a_wrong_root_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    """Even the key holder cannot swap a checkpoint for one the log does not match."""
    wrong = merkle.leaf_hash(b"not the log")
    note = db.signer.sign_note(checkpoint_body(Checkpoint(ORIGIN, MIDDLE, wrong)))
    db.sql(
        "DROP TRIGGER checkpoints_no_update",
        "UPDATE checkpoints SET note = ?, root = ? WHERE size = ?",
        params=(note, wrong, MIDDLE),
    )
    report = assert_caught(capsys, db, MIDDLE, "root differs from the tree of the entries")
    problems = report["problems"]
    assert isinstance(problems, list)
    assert any("not consistent with checkpoint" in p["what"] for p in problems)


def test_a_checkpoint_whose_columns_differ_from_its_note_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    db.sql("DROP TRIGGER checkpoints_no_update", "UPDATE checkpoints SET root = ? WHERE size = ?",
           params=(b"\x00" * 32, ENTRIES))  # fmt: skip
    assert_caught(capsys, db, ENTRIES, "columns differ from its signed note")


def test_edited_evidence_is_caught(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    content = db.value("SELECT content FROM evidence WHERE position = 15")
    assert isinstance(content, bytes)
    db.sql("UPDATE evidence SET content = ? WHERE position = 15",
           params=(content.replace(b"n", b"N"),))  # fmt: skip
    assert_caught(capsys, db, 15, "evidence does not match")


def test_removed_evidence_is_caught(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    db.sql("DELETE FROM evidence WHERE position = 16")
    assert_caught(capsys, db, 16, "evidence row is missing")


@pytest.mark.parametrize(("level", "index", "position"), [(0, 4, 5), (1, 5, 11), (3, 2, 17)])
def test_a_removed_tree_node_is_caught(
    capsys: pytest.CaptureFixture[str], db: Db, level: int, index: int, position: int
) -> None:
    db.sql("DROP TRIGGER tree_nodes_no_delete",
           f"DELETE FROM tree_nodes WHERE level = {level} AND idx = {index}")  # fmt: skip
    assert_caught(capsys, db, position, f"stored tree node ({level}, {index}) is missing")


def test_an_edited_tree_node_is_caught_where_it_starts(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    """A wrong inner node is named by its first position, not blamed on a node above it."""
    db.sql("DROP TRIGGER tree_nodes_no_update",
           "UPDATE tree_nodes SET hash = ? WHERE level = 2 AND idx = 6",
           params=(b"\x01" * 32,))  # fmt: skip
    report = assert_caught(capsys, db, 25, "stored tree node (2, 6) differs")
    assert report["problem_count"] == 1


def test_an_edited_projection_is_caught(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    """Someone deletes an opt-out from the consent state: the log still has it."""
    position = db.value("SELECT min(position) FROM consent_facts WHERE state = 'opted_out'")
    assert isinstance(position, int)
    db.sql(f"DELETE FROM consent_facts WHERE position = {position}")
    code, report, err = verify(capsys, db)
    assert code == 1
    assert report["projections_match_rebuild"] is False
    assert report["projections_differing"] == {"consent_facts": position}
    assert report["first_bad_position"] == position
    assert f"FAILED at position {position}: projection consent_facts differs" in err


def test_without_a_verifier_key_checkpoints_fail_and_with_the_right_key_they_pass(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    db.path.with_name(db.path.name + ".signing-key").unlink()
    code, report, err = verify(capsys, db)
    assert code == 1
    assert report["signatures_checked"] is False
    assert "signatures were not checked" in err
    assert not db.path.with_name(db.path.name + ".signing-key").exists()  # never created
    code, report, _ = verify(capsys, db, "--key", db.signer.verifier_key)
    assert code == 0
    other = Signer(ORIGIN, Ed25519PrivateKey.generate()).verifier_key
    code, report, err = verify(capsys, db, "--key", other)
    assert code == 1
    assert report["first_bad_position"] == MIDDLE


def test_a_malformed_verifier_key_is_refused(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    capsys.readouterr()
    assert main(["verify", "--db", str(db.path), "--key", "consent-ledger+zz+AAAA"]) == 1
    assert "verifier key" in capsys.readouterr().err


def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    code, _, err = verify(capsys, db, "--progress")
    assert code == 0
    assert f"verify: entries: {ENTRIES:,}/{ENTRIES:,} entries (100%)" in err
    assert "verify: done" in err
    code, _, err = verify(capsys, db, "--no-progress")
    assert code == 0
    assert err == ""


def _file_state(path: Path) -> bytes:
    """The database file's bytes with everything in the WAL moved into it."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.read_bytes()


def test_verify_never_writes(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    before = _file_state(db.path)
    code, _, _ = verify(capsys, db)
    assert code == 0
    assert _file_state(db.path) == before


def test_a_report_keeps_the_earliest_problem_past_its_limit() -> None:
    report = Report()
    for position in range(MAX_PROBLEMS + 500, 0, -1):
        report.add(position, "bad")
    assert report.problem_count == MAX_PROBLEMS + 500
    assert len(report.problems) == MAX_PROBLEMS
    assert report.first_bad_position == 1
    assert min(p.position for p in report.problems) == 1


def test_verify_refuses_what_is_not_a_ledger_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.db"
    assert main(["verify", "--db", str(missing)]) == 1
    assert "there is no database" in capsys.readouterr().err
    assert not missing.exists()  # verify never creates one
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    assert main(["verify", "--db", str(junk)]) == 1
    assert "not a consent-ledger database" in capsys.readouterr().err


def test_an_empty_ledger_verifies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    ConsentLedger(path).close()
    capsys.readouterr()
    assert main(["verify", "--db", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["entries"], report["checkpoints"]) == (True, 0, 0)


def test_a_schema_behind_this_build_is_refused_not_migrated(
    capsys: pytest.CaptureFixture[str], db: Db
) -> None:
    db.sql("DELETE FROM schema_migrations WHERE name = '0004_tree.sql'")
    capsys.readouterr()
    assert main(["verify", "--db", str(db.path)]) == 1
    assert "needs 1 schema migration(s) (0004_tree.sql first)" in capsys.readouterr().err
    assert db.value("SELECT count(*) FROM schema_migrations WHERE name = '0004_tree.sql'") == 0
