"""Lanes: short synchronous calls (point reads) run on one dedicated thread, off the event loop.

A thread-pool hop per request (``run_in_executor``) costs a queue, a lock, a future and a thread
wake-up per call, and its threads fight the event loop for the GIL. A lane batches instead: calls
queue up while its thread is busy, the thread runs every queued call in turn, and the results go
back to the event loop in one ``call_soon_threadsafe`` per batch.

Guarantees:
- a call runs on the lane's thread, never on the event loop; calls run one at a time, in the
  order they were made;
- each caller gets exactly its own call's result or exception;
- a caller that stops waiting (a disconnected client) does not stop the call or the lane;
- ``close`` runs every call already made, then stops the thread.

Only short calls belong on a lane (one number's decision, one key lookup): a long call delays
every call queued behind it. Long reads use the thread pool; appends use the writer pool, whose
concurrent callers the store groups into one commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ledger.errors import StoreUnavailable

T = TypeVar("T")

_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class LaneClosed(StoreUnavailable):
    """The lane was closed: the service is shutting down (answered 503 with Retry-After)."""


class Lane:
    """One thread running short synchronous calls for one event loop (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._calls: deque[_Call] = deque()
        self._wake = threading.Event()
        self._sleeping = False  # the thread is (about to be) waiting for a call
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the lane's thread; its result, or its exception raised here."""
        if self._closed:
            raise LaneClosed("the service is shutting down")
        future: asyncio.Future[T] = self._loop.create_future()
        self._calls.append((fn, args, future))
        if self._sleeping:  # a busy thread finds the call without being woken
            self._wake.set()
        return await future

    def close(self) -> None:
        """Run the calls already made, then stop the thread (waits for it)."""
        self._closed = True
        self._wake.set()  # wakes a sleeping thread; a busy one sees the flag after its batch
        self._thread.join()

    def _serve(self) -> None:
        while True:
            self._sleeping = True
            if not self._calls:  # checked after the flag is up: no call can slip past unseen
                self._wake.wait()
            self._sleeping = False
            self._wake.clear()
            done: list[_Done] = []
            while self._calls:
                fn, args, future = self._calls.popleft()
                try:
                    done.append((future, True, fn(*args)))
                except StopIteration as exc:  # a future cannot carry StopIteration
                    done.append((future, False, RuntimeError(f"{fn!r} raised {exc!r}")))
                except BaseException as exc:  # delivered to its caller, never lost here
                    done.append((future, False, exc))
            if done:
                self._loop.call_soon_threadsafe(_deliver, done)
            if self._closed and not self._calls:
                return


def _deliver(done: list[_Done]) -> None:
    """Resolve each waiting caller's future (on the event loop)."""
    for future, ok, value in done:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
