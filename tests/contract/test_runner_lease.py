"""One runner per deployment (``ledger.runner``), on every engine: a job's lease is held by one
process at a time, never blocks, and passes to another process when its holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from .conftest import Engine

HOLDER = textwrap.dedent(
    """
    import sys, time
    from ledger.location import parse_location
    from projections.engine import open_engine
    engine = open_engine(parse_location(sys.argv[1]))
    print(engine.store.lease("nightly").held(), flush=True)
    time.sleep(60)
    """
)


def _holder(engine: Engine) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, engine.location], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "True"
    return child


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_process_holds_a_job_and_another_takes_it_over_when_it_dies(engine: Engine) -> None:
    child = _holder(engine)
    ledger = engine.open()
    try:
        lease = ledger.store.lease("nightly")
        assert lease.held() is False  # answered at once: another process runs the job
        assert ledger.store.lease("other-job").held() is True  # jobs are independent
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert _eventually(lease.held)  # once the store has seen the holder go (PostgreSQL:
        # its server ends the dead session within moments)
        assert lease.held() is True  # kept
        lease.release()
        other = engine.open()
        try:
            assert other.store.lease("nightly").held() is True
            assert lease.held() is False
        finally:
            other.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        ledger.close()


def test_a_job_name_must_be_a_short_lowercase_name(engine: Engine) -> None:
    ledger = engine.open()
    try:
        with pytest.raises(ValueError, match="lowercase"):
            ledger.store.lease("../etc/passwd")
    finally:
        ledger.close()
