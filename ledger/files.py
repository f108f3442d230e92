"""Private files: what the ledger puts on disk (the database, its lock file, evidence bundles)
is personal data, readable by its owner only.

Guarantees: a directory created here is mode 0700 (an existing one is left as it is); a file
created here is mode 0600 from the moment it exists, never briefly readable by others, whatever
the process umask; ``PrivateReplacement`` replaces its target atomically (a reader sees the old
file or the whole new one) through a temporary file created exclusively, with an unpredictable
name, in the target's own directory (so no symlink is followed and no other file is clobbered),
written and fsynced before it is renamed onto the target.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path
from types import TracebackType

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create directory ``path`` if it does not exist: itself mode 0700, any missing parents
    with the usual mode. An existing directory keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, PRIVATE_DIR_MODE)  # exactly 0700 whatever the umask took away


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; whether it was created. An
    existing file (or symlink) is left untouched."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class PrivateReplacement:
    """A new content for ``path``, written privately: the temporary file (0600) exists from
    construction; ``publish`` writes it, fsyncs it and renames it onto ``path``; leaving the
    ``with`` block unpublished removes it and leaves ``path`` as it was."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self._fd: int | None = fd
        self._temp: Path | None = Path(name)

    def publish(self, data: bytes) -> None:
        """Make ``data`` the content of ``path`` (mode 0600), durably."""
        fd, self._fd = self._fd, None
        if fd is None or self._temp is None:
            raise RuntimeError("this replacement was already published or discarded")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self._temp, self.path)
        self._temp = None
        _fsync_dir(self.path.parent)

    def discard(self) -> None:
        """Remove the temporary file (nothing if already published)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def __enter__(self) -> PrivateReplacement:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
