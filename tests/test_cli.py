"""The ``consent-ledger`` command line, as an operator uses it (issue 2, "CLI")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import api
from api.cli import main
from ledger.entries import decode_evidence
from projections.ledger import ConsentLedger

NUMBER = "+6581968289"
CLASSIFICATION_KEYS = {"action", "scope", "keyword", "match", "policy"}


class Run:
    """Runs ``main`` in-process and captures what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str], db: Path) -> None:
        self.capsys = capsys
        self.db = db

    def __call__(self, *args: str, db: bool = True) -> tuple[int, str, str]:
        argv = [*args, "--db", str(self.db)] if db else list(args)
        code = main(argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args)
        assert code == 0, err
        assert err == ""
        lines = out.splitlines()
        assert len(lines) == 1, out
        return json.loads(lines[0])

    def head(self) -> int:
        led = ConsentLedger(self.db)
        try:
            return led.head()
        finally:
            led.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.db"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], db: Path) -> Run:
    return Run(capsys, db)


@pytest.fixture
def known(db: Path, run: Run) -> Run:
    """A database where ACME_MKT and ACME_CARE are registered (positions 1 and 2)."""
    run.json("init")
    led = ConsentLedger(db)
    try:
        led.configure_subaccount("default", "ACME_MKT", actor="admin:test", default_region="SG")
        led.configure_subaccount("default", "ACME_CARE", actor="admin:test")
    finally:
        led.close()
    return run


def test_init_creates_the_database_and_is_repeatable(run: Run, db: Path) -> None:
    assert not db.exists()
    assert run.json("init") == {"database": str(db), "log_position": 0}
    assert db.exists()
    assert run.json("init") == {"database": str(db), "log_position": 0}


def test_db_defaults_to_the_environment_variable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("CONSENT_LEDGER_DB", str(path))
    assert main(["init"]) == 0
    assert json.loads(capsys.readouterr().out)["database"] == str(path)
    assert path.exists()


def test_record_appends_and_normalises_the_number(known: Run) -> None:
    out = known.json(
        "record",
        "--subaccount",
        "ACME_MKT",
        "--msisdn",
        "8196 8289",  # national digits in the subaccount's region (SG)
        "--action",
        "opt_out",
        "--text",
        "STOP",
        "--occurred-at",
        "2026-01-01T00:00:00Z",
    )
    assert out == {
        "outcome": "opted_out",
        "position": 3,
        "duplicate": False,
        "msisdn": NUMBER,
        "subaccount": "ACME_MKT",
        "unresolved": False,
        "flagged": None,
        "notes": [],
    }
    assert known.head() == 3


def test_record_is_idempotent_on_its_key(known: Run) -> None:
    args = ("record", "--subaccount", "ACME_MKT", "--msisdn", NUMBER, "--action", "opt_out")
    first = known.json(*args, "--idempotency-key", "import-row-17")
    again = known.json(*args, "--idempotency-key", "import-row-17")
    assert (first["position"], first["duplicate"]) == (3, False)
    assert (again["position"], again["duplicate"]) == (3, True)
    assert known.head() == 3


def test_record_help_and_unknown_subaccount_opt_out(known: Run) -> None:
    helped = known.json(
        "record", "--subaccount", "ACME_MKT", "--msisdn", NUMBER, "--action", "help"
    )
    assert helped["outcome"] == "help"
    unresolved = known.json(
        "record", "--subaccount", "NOT_REGISTERED", "--msisdn", NUMBER, "--action", "opt_out"
    )
    assert unresolved["outcome"] == "opted_out"
    assert unresolved["subaccount"] is None
    assert unresolved["notes"]
    check = known.json("check", NUMBER, "--subaccount", "ACME_CARE")
    assert check["state"] == "opted_out"  # applied tenant-wide


@pytest.mark.parametrize("subaccount", [None, "", "undefined", "{{data.payload.subAccountId}}"])
def test_record_opt_out_without_a_usable_subaccount_is_tenant_wide(
    known: Run, subaccount: str | None
) -> None:
    """The CLI follows the API's rules (one implementation): no STOP is refused."""
    where = () if subaccount is None else ("--subaccount", subaccount)
    out = known.json("record", *where, "--msisdn", NUMBER, "--action", "opt_out", "--text", "STOP")
    assert (out["outcome"], out["unresolved"], out["subaccount"]) == ("opted_out", True, None)
    for name in ("ACME_MKT", "ACME_CARE"):
        assert known.json("check", NUMBER, "--subaccount", name)["allowed"] is False


def test_record_keeps_evidence_of_who_ran_it(known: Run, db: Path) -> None:
    out = known.json(
        "record", "--subaccount", "ACME_MKT", "--msisdn", NUMBER, "--action", "opt_out",
        "--text", "STOP", "--actor", "agent-7",
    )  # fmt: skip
    led = ConsentLedger(db)
    try:
        entry = led.store.read_positions([out["position"]])[0].entry
        _, content = led.store.evidence([out["position"]])[out["position"]]
    finally:
        led.close()
    assert entry.event.actor == "data-subject"  # type: ignore[union-attr]
    assert entry.event.claimed_actor == "agent-7"  # type: ignore[union-attr]
    assert entry.event.recorded_by.startswith("cli:")  # type: ignore[union-attr]
    evidence = decode_evidence(content)  # type: ignore[arg-type]
    assert (evidence.text, evidence.recorded_by) == ("STOP", entry.event.recorded_by)  # type: ignore[union-attr]
    assert evidence.host


def test_record_key_cannot_take_a_webhook_key(known: Run, db: Path) -> None:
    """The CLI's key lives in the client namespace: '8x8:<umid>' names no webhook entry."""
    args = ("record", "--subaccount", "ACME_MKT", "--action", "opt_out")
    first = known.json(*args, "--msisdn", NUMBER, "--idempotency-key", "8x8:m-1")
    led = ConsentLedger(db)
    try:
        assert led.store.read_positions([first["position"]])[0].entry.key == "api:8x8:m-1"
    finally:
        led.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", ("opt_out", "subaccount", "STOP", "exact")),
        ("stop all", ("opt_out", "tenant", "STOP ALL", "exact")),
        ("please stop texting me", ("opt_out", "subaccount", "STOP", "phrase")),
        ("start", ("opt_in", "subaccount", "START", "exact")),
        ("AIDE", ("help", None, "AIDE", "exact")),
        ("can you stop the delivery at 5?", ("review", None, "STOP", "contains")),
        ("STOPWATCH", ("none", None, None, None)),
        ("", ("none", None, None, None)),
    ],
)
def test_classify_prints_one_object_with_the_five_keys(
    run: Run, text: str, expected: tuple[Any, ...]
) -> None:
    out = run.json("classify", text)
    assert set(out) == CLASSIFICATION_KEYS
    assert (out["action"], out["scope"], out["keyword"], out["match"]) == expected
    assert out["policy"] == "default@1"


def test_classify_with_a_subaccount_names_its_policy(known: Run) -> None:
    out = known.json("classify", "STOP", "--subaccount", "ACME_MKT")
    assert set(out) == CLASSIFICATION_KEYS
    assert out["policy"] == "ACME_MKT@1"


def test_classify_needs_no_database(run: Run, db: Path) -> None:
    code, out, _ = run("classify", "STOP", db=False)
    assert code == 0
    assert json.loads(out)["action"] == "opt_out"
    assert not db.exists()


def _scenario(run: Run) -> None:
    """STOP (01-01), START (02-01) on ACME_MKT; positions 3 and 4."""
    for action, occurred in (("opt_out", "2026-01-01T00:00:00Z"), ("opt_in", "2026-02-01")):
        run.json(
            "record",
            "--subaccount",
            "ACME_MKT",
            "--msisdn",
            NUMBER,
            "--action",
            action,
            "--occurred-at",
            occurred,
            "--method",
            "import",
        )


def test_check_exits_zero_whatever_the_answer(known: Run) -> None:
    _scenario(known)
    now = known.json("check", NUMBER, "--subaccount", "ACME_MKT")
    assert (now["allowed"], now["state"]) == (True, "opted_in")
    assert now["decided_by"]["position"] == 4
    assert now["log_position"] == 4
    denied = known.json(
        "check", NUMBER, "--subaccount", "ACME_MKT", "--at", "2026-01-15T00:00:00+08:00"
    )
    assert (denied["allowed"], denied["state"]) == (False, "opted_out")
    assert denied["at"] == "2026-01-14T16:00:00.000Z"
    assert denied["decided_by"]["position"] == 3
    assert {"allowed", "state", "reason", "decided_by", "msisdn", "subaccount"} <= set(denied)
    unknown = known.json("check", "+6591234567", "--subaccount", "ACME_MKT")
    assert (unknown["allowed"], unknown["state"], unknown["decided_by"]) == (
        True,
        "unknown",
        None,
    )


def test_check_known_at_a_position_and_a_time(known: Run) -> None:
    _scenario(known)
    at_position = known.json("check", NUMBER, "--subaccount", "ACME_MKT", "--known-at", "3")
    assert (at_position["state"], at_position["allowed"]) == ("opted_out", False)
    assert at_position["known_at"] == 3
    assert at_position["log_position"] == 3
    before_any = known.json("check", NUMBER, "--subaccount", "ACME_MKT", "--known-at", "2")
    assert before_any["state"] == "unknown"

    code, out, _ = known("history", NUMBER)
    assert code == 0
    recorded_3 = json.loads(out.splitlines()[0])["recorded_at"]
    at_time = known.json("check", NUMBER, "--subaccount", "ACME_MKT", "--known-at", recorded_3)
    assert at_time["log_position"] == 3
    assert at_time["state"] == "opted_out"
    assert at_time["known_at"] == recorded_3
    assert at_time["known_at_note"] is None


def test_check_known_at_a_future_time_answers_as_known_now_and_says_so(known: Run) -> None:
    _scenario(known)
    now = known.json("check", NUMBER, "--subaccount", "ACME_MKT")
    future = known.json(
        "check", NUMBER, "--subaccount", "ACME_MKT", "--known-at", "2999-01-01T00:00:00Z"
    )
    assert future["log_position"] == now["log_position"] == known.head()
    assert future["state"] == now["state"]
    assert (
        "2999-01-01T00:00:00.000Z is in the future; answered as known now"
        in (future["known_at_note"])
    )


def test_history_prints_every_entry_as_json_lines(known: Run) -> None:
    _scenario(known)
    known.json(
        "record", "--subaccount", "ACME_MKT", "--msisdn", "+6591234567", "--action", "opt_out"
    )
    code, out, err = known("history", "+65 8196 8289")
    assert (code, err) == (0, "")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["position"] for e in entries] == [3, 4]
    assert [e["type"] for e in entries] == ["consent.revoked", "consent.granted"]
    assert {e["msisdn"] for e in entries} == {NUMBER}
    assert entries[0]["event"]["method"] == "import"
    code, out, _ = known("history", "+6591234568")
    assert (code, out) == (0, "")


def test_rebuild_replays_the_log(known: Run) -> None:
    _scenario(known)
    before = known.json("check", NUMBER, "--subaccount", "ACME_MKT", "--at", "2026-01-15")
    assert known.json("rebuild") == {"replayed": 4, "log_position": 4}
    after = known.json("check", NUMBER, "--subaccount", "ACME_MKT", "--at", "2026-01-15")
    assert after == before


ERRORS = {
    "invalid number": (
        "record",
        "--subaccount",
        "ACME_MKT",
        "--msisdn",
        "12345",
        "--action",
        "opt_out",
    ),
    "letters in number": ("check", "1-800-FLOWERS", "--subaccount", "ACME_MKT"),
    "naive time on an opt-in": (  # an opt-out's unreadable time is replaced, never refused
        "record",
        "--subaccount",
        "ACME_MKT",
        "--msisdn",
        NUMBER,
        "--action",
        "opt_in",
        "--occurred-at",
        "2026-01-01T10:00:00",
    ),
    "naive at": ("check", NUMBER, "--subaccount", "ACME_MKT", "--at", "2026-01-01 10:00"),
    "known-at past int()'s digit limit": (
        "check",
        NUMBER,
        "--subaccount",
        "ACME_MKT",
        "--known-at",
        "9" * 4301,
    ),
    "known-at superscript digit": ("check", NUMBER, "--subaccount", "ACME_MKT", "--known-at", "²"),
    "known-at beyond the newest position": (
        "check",
        NUMBER,
        "--subaccount",
        "ACME_MKT",
        "--known-at",
        "999",
    ),
    "unknown subaccount opt_in": (
        "record",
        "--subaccount",
        "NOT_REGISTERED",
        "--msisdn",
        NUMBER,
        "--action",
        "opt_in",
    ),
    "opt_in reading as opt_out": (
        "record",
        "--subaccount",
        "ACME_MKT",
        "--msisdn",
        NUMBER,
        "--action",
        "opt_in",
        "--text",
        "STOP",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_print_one_line_exit_non_zero_and_change_nothing(known: Run, case: str) -> None:
    _scenario(known)
    head = known.head()
    code, out, err = known(*ERRORS[case])
    assert code != 0
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.endswith("\n")
    assert "Traceback" not in err
    assert known.head() == head


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "consent-ledger"
    assert script.exists(), script
    db = str(tmp_path / "ledger.db")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args, "--db", db], capture_output=True, text=True, timeout=60
        )

    assert cli("init").returncode == 0
    recorded = cli(
        "record",
        "--subaccount",
        "ACME_MKT",
        "--msisdn",
        NUMBER,
        "--action",
        "opt_out",
        "--text",
        "STOPALL",
    )
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["outcome"] == "opted_out"
    checked = cli("check", NUMBER, "--subaccount", "ACME_CARE")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["allowed"] is False
    failed = cli("check", "not-a-number", "--subaccount", "ACME_CARE")
    assert failed.returncode != 0
    assert failed.stdout == ""
    assert len(failed.stderr.splitlines()) == 1, failed.stderr


def test_python_m_api_cli_is_the_same_command(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "init", "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"database": db, "log_position": 0}


def test_one_function_opens_the_database() -> None:
    """Every command and the server open their database through
    ``projections.ledger.open_ledger``: nothing in ``api`` constructs the ledger or its store,
    or connects to SQLite, itself (``verify``'s read-only open is the adapter's)."""
    root = Path(api.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in {"connect", "ConsentLedger", "SqliteLogStore"}:
                    found.add((path.relative_to(root).as_posix(), name))
    assert found == set()


def test_subaccount_set_registers_and_configures_then_lists(run: Run) -> None:
    made = run.json("subaccount", "set", "SHOP", "--region", "sg", "--unknown", "deny")
    assert made["default_region"] == "SG"
    assert made["unknown"] == "deny"
    assert made["policy"] == "SHOP@1"
    again = run.json("subaccount", "set", "SHOP", "--mode", "strict")
    assert again["policy"] == "SHOP@2"
    assert again["unknown"] == "deny"  # unchanged fields keep their value
    code, out, _ = run("subaccount", "list")
    assert code == 0
    assert [json.loads(line)["subaccount"] for line in out.splitlines()] == ["SHOP"]
    decision = run.json("check", "8196 8289", "--subaccount", "SHOP")
    assert decision["msisdn"] == "+6581968289"
    assert decision["allowed"] is False  # unknown: deny


def test_subaccount_set_refuses_a_bad_region_and_changes_nothing(run: Run) -> None:
    run.json("init")
    code, out, err = run("subaccount", "set", "SHOP", "--region", "XX")
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert run.head() == 0


def test_tenant_settings_from_the_command_line(known: Run) -> None:
    """The CLI changes the tenant's settings with the API's rule (nothing appended when
    unchanged); a national number of an unresolved opt-out then reads in its region."""
    assert known.json("tenant", "show") == {
        "tenant": "default",
        "revoke_all": False,
        "default_region": None,
        "position": None,
        "changed": False,
        "evidence_retention_days": None,
        "retention_reason": None,
    }
    made = known.json("tenant", "set", "--region", "sg")
    assert (made["default_region"], made["changed"]) == ("SG", True)
    again = known.json("tenant", "set", "--region", "SG")
    assert (again["changed"], again["position"]) == (False, None)
    out = known.json("record", "--msisdn", "81968289", "--action", "opt_out", "--text", "STOP")
    assert (out["msisdn"], out["unresolved"]) == (NUMBER, True)
    assert known.json("tenant", "set", "--revoke-all", "on")["revoke_all"] is True
