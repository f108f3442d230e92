"""One runner per deployment: a named job (signing checkpoints, dispatching replies, applying
retention) runs in exactly one process of the deployment at a time, whatever the number of
workers or nodes.

Guarantees every adapter's lease gives (the contract suite checks them):
- at most one process holds a job's lease at a time (``held`` true in one process only);
- a lease is never held by a process that is gone: it is bound to something the operating
  system or the database releases when the process dies (a file lock, a database session), so
  a surviving process takes the job over at its first ``held`` call after that release (at once
  for a file lock; for a database session, as soon as the server has ended it);
- ``held`` never blocks: it answers at once whether this process is the runner now, taking the
  lease when it is free;
- a process keeps its lease until ``release`` (or ``close`` of the store, or its death).

Use: call ``held`` before each run of the job; run only when it answers true.
"""

from __future__ import annotations

import re
from typing import Protocol

_JOB = re.compile(r"[a-z][a-z0-9-]{0,40}")


def job_name(job: str) -> str:
    """``job`` checked to be a short lowercase name (it becomes part of a file or lock name)."""
    if not _JOB.fullmatch(job):
        raise ValueError(f"job names are lowercase letters, digits and '-': {job!r}")
    return job


class Lease(Protocol):
    """The lease of one named job in one process."""

    job: str

    def held(self) -> bool:
        """Whether this process is the job's runner now (taking the lease if it is free)."""
        ...

    def release(self) -> None:
        """Give the lease up (another process may take it at its next ``held``)."""
        ...
