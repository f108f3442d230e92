"""The one-runner lease on PostgreSQL (``ledger.postgres.lease``) when its holder stops
answering without dying (SIGSTOP, a paused VM): the server ends the holder's idle session and
another process takes the job over, while a live holder's heartbeat keeps its job however long
it stays idle."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ledger.postgres import lease as pg_lease
from projections.ledger import open_ledger

pytestmark = pytest.mark.slow

HOLDER = textwrap.dedent(
    """
    import sys, time
    from ledger.location import parse_location
    from projections.engine import open_engine
    engine = open_engine(parse_location(sys.argv[1]))
    print(engine.store.lease(sys.argv[2]).held(), flush=True)
    time.sleep(120)
    """
)
IDLE_S = int(pg_lease.IDLE_SESSION_TIMEOUT.removesuffix("s"))


def _holder(url: str, job: str) -> subprocess.Popen[str]:
    """A process that takes ``job`` and then only sleeps."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, job], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "True"
    return child


def test_a_frozen_holder_gives_its_job_up_and_an_idle_live_one_keeps_it(pg_url: str) -> None:
    live, frozen = _holder(pg_url, "live-job"), _holder(pg_url, "frozen-job")
    ledger = open_ledger(pg_url)
    try:
        frozen.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        assert ledger.store.lease("frozen-job").held() is False  # not at once
        while not ledger.store.lease("frozen-job").held():
            assert time.monotonic() - stopped < IDLE_S + 10, "the frozen holder kept its job"
            time.sleep(0.2)
        assert time.monotonic() - stopped >= IDLE_S - 1
        # the live holder has been idle as long, and keeps its job
        assert ledger.store.lease("live-job").held() is False
        assert live.poll() is None
    finally:
        for child in (live, frozen):
            child.kill()  # SIGKILL ends a stopped process too
            child.wait()
        ledger.close()
