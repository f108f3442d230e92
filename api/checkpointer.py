"""Background checkpoints: while the app runs, sign a checkpoint whenever the log has grown.

Guarantees: one signer for the whole deployment, however many workers and nodes run one of
these (the lease of job ``checkpoints``, ``ledger.runner``: when the signer dies another takes
over); at most one checkpoint per ``checkpoint_interval`` seconds (checked again as the store
signs); a log that has grown gets a
checkpoint within about 1¼ intervals of the previous one; a failure (a locked database, an
unusable key file, a tree that no longer matches the last checkpoint) is logged and retried at
the next tick, never raised into the app; ``stop`` returns promptly (at most one signing already
under way is waited for, never a whole interval).
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskGroup

from api.state import Services
from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import LedgerError, TamperDetected
from ledger.timefmt import parse_time

SIGNER_JOB = "checkpoints"
"""The one-runner job (``ledger.runner``) of signing checkpoints."""
TICKS_PER_INTERVAL = 4
"""How often, per interval, a worker looks whether a checkpoint is due."""

log = structlog.get_logger("consent_ledger.checkpoints")


class Checkpointer:
    """Signs checkpoints of ``services.ledger`` in the background (one per worker process)."""

    def __init__(self, services: Services, interval: float) -> None:
        self.services = services
        self.interval = interval
        self.tick = interval / TICKS_PER_INTERVAL
        self.signed = 0
        """Checkpoints this worker has signed (for tests and metrics)."""
        self.failures = 0
        """Ticks that failed (logged)."""
        self._group: TaskGroup | None = None

    def due(self) -> bool:
        """Whether the log has grown past the latest checkpoint and the interval has passed.

        A cheap read-only look; the decision that counts is taken again under the write lock.
        """
        ledger = self.services.ledger
        latest = ledger.latest_checkpoint()
        head = ledger.head()
        if head == 0 or (latest is not None and latest.size >= head):
            return False
        if latest is None:
            return True
        age = ledger.clock() - parse_time(latest.signed_at)
        return age >= timedelta(seconds=self.interval)

    def sign_if_due(self) -> CheckpointRecord | None:
        """Sign a checkpoint if one is due and this process is the deployment's signer
        (``ledger.runner``: one runner of ``checkpoints`` across workers and nodes, taken over
        by another when it dies). Blocking; run it in a thread. Returns a new one."""
        if not self.due() or not self.services.ledger.store.lease(SIGNER_JOB).held():
            return None
        before = self.services.ledger.latest_checkpoint()
        settings = self.services.settings
        record = self.services.ledger.sign_checkpoint(
            self.services.get_signer(), settings.origin, min_interval=self.interval
        )
        if record is None or (before is not None and record.size <= before.size):
            return None  # another worker signed first
        self.signed += 1
        log.info("checkpoint signed", tree_size=record.size, signed_at=record.signed_at)
        return record

    async def run(self) -> None:
        """Tick until cancelled; each tick signs in a worker thread if a checkpoint is due."""
        while True:
            await anyio.sleep(self.tick)
            await self.tick_once()

    async def tick_once(self) -> None:
        """One tick: sign if due; log (never raise) whatever goes wrong."""
        try:
            await anyio.to_thread.run_sync(self.sign_if_due)
        except TamperDetected as exc:
            self.failures += 1
            log.critical("checkpoint refused: the log does not match its last checkpoint",
                         error=str(exc))  # fmt: skip
        except LedgerError as exc:
            self.failures += 1
            log.error("checkpoint failed", error=str(exc), kind=type(exc).__name__)
        except Exception as exc:
            self.failures += 1
            log.error("checkpoint failed unexpectedly", error=repr(exc),
                      traceback=traceback.format_exc())  # fmt: skip

    def start(self, group: TaskGroup) -> None:
        """Start ticking in ``group`` (nothing happens when the interval is 0)."""
        if self.interval > 0:
            self._group = group
            group.start_soon(self.run, name="checkpointer")

    def stop(self) -> None:
        """Stop ticking (a signing under way finishes; its transaction is never cut short)."""
        if self._group is not None:
            self._group.cancel_scope.cancel()
            self._group = None


def load_signer(services: Services) -> None:
    """Load the signing key, creating the key file (0600) on first start; log, never raise.

    An unusable key file leaves the service running (intake must not stop) with checkpoints
    failing loudly in the log until the file is fixed.
    """
    try:
        signer = services.get_signer()
    except Exception as exc:
        log.error("checkpoint signing key unusable; no checkpoints until it is fixed",
                  path=str(services.settings.signing_key), error=str(exc))  # fmt: skip
        return
    log.info("checkpoint signing key", verifier_key=signer.verifier_key)


@asynccontextmanager
async def checkpoints(services: Services) -> AsyncIterator[Checkpointer]:
    """While inside: the key is loaded (or created) and checkpoints are signed in the background
    every ``settings.checkpoint_interval`` seconds (0: only on demand). Leaving stops promptly."""
    await anyio.to_thread.run_sync(load_signer, services)
    checkpointer = Checkpointer(services, services.settings.checkpoint_interval)
    async with anyio.create_task_group() as group:
        checkpointer.start(group)
        try:
            yield checkpointer
        finally:
            checkpointer.stop()
