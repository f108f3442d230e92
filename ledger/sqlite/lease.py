"""The one-runner lease on SQLite (``ledger.runner``): an exclusive ``flock`` on a file beside
the database (``<db>-runner-<job>``, mode 0600), which the kernel releases when the process
holding it dies. Every worker of a deployment on one SQLite file shares that file's folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ledger.files import PRIVATE_FILE_MODE
from ledger.runner import job_name

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process, so it is always the runner
    fcntl = None  # type: ignore[assignment]


class FileLease:
    """The lease of ``job`` for the database at ``db`` (see the module)."""

    def __init__(self, db: Path, job: str) -> None:
        self.job = job_name(job)
        self._path = f"{db}-runner-{self.job}"
        self._fd: int | None = None
        self._mutex = threading.Lock()

    def held(self) -> bool:
        """Whether this process holds the lease now (taking it, without waiting, if free)."""
        with self._mutex:
            if self._fd is not None:
                return True
            if fcntl is None:
                return True
            fd = os.open(self._path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def release(self) -> None:
        """Give the lease up (closing the file frees the lock)."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
