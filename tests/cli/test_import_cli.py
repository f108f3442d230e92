"""``consent-ledger import`` as an operator runs it: the summary, the rejects file, stdin, a
re-run after the process was killed mid-import, and the progress bar (a terminal only)."""

from __future__ import annotations

import csv
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.cli import main
from projections.ledger import ConsentLedger

CLI = [sys.executable, "-m", "api.cli"]


def cli(db: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, *args, "--db", str(db)], input=stdin, capture_output=True, check=False, timeout=120
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    assert main(["subaccount", "set", "ACME_MKT", "--region", "SG", "--db", str(path)]) == 0
    return path


def test_summary_and_rejects_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    data = tmp_path / "list.csv"
    data.write_text(
        "Phone,subaccount,occurred_at\n"
        "81968289,ACME_MKT,2024-01-01\n"
        "n/a,ACME_MKT,2024-01-01\n"
        "91234567,ACME_MKT,\n"
    )
    rejects = tmp_path / "rejects.csv"
    args = ["import", str(data), "--map", "Phone=msisdn", "--rejects", str(rejects), "--db"]
    assert main([*args, str(db)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no bar on a pipe
    summary = json.loads(out)
    assert {k: summary[k] for k in ("rows_read", "recorded", "rejected", "file")} == {
        "rows_read": 3,
        "recorded": 1,
        "rejected": 2,
        "file": "list.csv",
    }
    with rejects.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "column", "reason"]
    assert [r[:2] for r in rows[1:]] == [["3", "msisdn"], ["4", "occurred_at"]]
    assert "--as-of" in rows[2][2]


def test_stdin_and_strict(db: Path) -> None:
    done = cli(
        db,
        "import",
        "-",
        "--subaccount",
        "ACME_MKT",
        "--as-of",
        "2024-01-01",
        stdin=b"+6581968289\n+6591234567\n",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["file"], summary["recorded"]) == ("stdin", 2)
    refused = cli(
        db,
        "import",
        "-",
        "--subaccount",
        "ACME_MKT",
        "--strict",
        "--as-of",
        "2024-01-01",
        stdin=b"+6581000001\nnot a number\n",
    )
    assert refused.returncode == 1
    assert refused.stdout == b""
    assert b"row 2, column msisdn" in refused.stderr


@pytest.mark.slow
def test_rerun_after_sigkill_records_nothing_twice(db: Path, tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    data.write_text("".join(f"+6581{n:06d}\n" for n in range(60_000)))
    args = ["import", str(data), "--subaccount", "ACME_MKT", "--as-of", "2024-01-01"]
    proc = subprocess.Popen(
        [*CLI, *args, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once some batches are committed
        time.sleep(0.2)
        led = ConsentLedger(db)
        try:
            if led.head() > 2000:
                break
        finally:
            led.close()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    led = ConsentLedger(db)
    partial = led.head() - 1
    led.close()
    assert 0 < partial < 60_000
    done = cli(db, *args)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["recorded"], summary["duplicates"]) == (60_000 - partial, partial)
    led = ConsentLedger(db)
    try:
        assert led.head() == 1 + 60_000
    finally:
        led.close()


def read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_progress_bar_on_a_terminal_only(db: Path, tmp_path: Path) -> None:
    data = tmp_path / "list.csv"
    data.write_text("".join(f"+6581{n:06d}\n" for n in range(3000)))
    args = [*CLI, "import", str(data), "--subaccount", "ACME_MKT", "--as-of", "2024-01-01"]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*args, "--db", str(db), "--batch-rows", "100"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(secondary)
    screen = read_all(primary, proc)
    stdout = proc.stdout.read() if proc.stdout else b""
    proc.wait()
    os.close(primary)
    assert proc.returncode == 0
    assert b"import list.csv" in screen
    assert b"100%" in screen
    assert json.loads(stdout)["recorded"] == 3000  # the result alone on stdout
    piped = cli(db, "import", str(data), "--subaccount", "ACME_MKT", "--as-of", "2024-01-01")
    assert piped.stderr == b""
    quiet = subprocess.Popen(
        [*args, "--db", str(db), "--quiet"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=(tty := pty.openpty())[1],
    )
    os.close(tty[1])
    shown = read_all(tty[0], quiet)
    quiet.wait()
    os.close(tty[0])
    assert shown == b""
