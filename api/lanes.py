"""Lanes: synchronous work run on one dedicated thread, off the event loop, in batches.

A thread-pool hop per request (``run_in_executor``) costs a queue, a lock, a future and a thread
wake-up per call, and its threads fight the event loop and each other for the GIL. A lane
batches instead: items queue up while its thread is busy, the thread takes every queued item at
once, and the outcomes go back to the event loop in one ``call_soon_threadsafe`` per batch.

- ``BatchLane`` hands each batch to one function (a batch of webhooks: classified one by one,
  appended as one group commit);
- ``Lane`` runs calls, one after the other (point reads: one number's decision, one key).

Guarantees:
- the work runs on the lane's thread, never on the event loop; items are taken in the order they
  were submitted;
- each caller gets exactly its own item's outcome (result or exception); should the batch
  function itself fail, every item of that batch gets its exception;
- a caller that stops waiting (a disconnected client) does not stop the work or the lane;
- ``close`` finishes every item already submitted, then stops the thread; later submissions
  raise ``LaneClosed`` (a 503).

Only short work belongs on a lane: a long item delays every item queued behind it. Long reads use
the thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from ledger.errors import StoreUnavailable

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item, beside T for results
R = TypeVar("R")

_Done = tuple["asyncio.Future[Any]", bool, Any]


class LaneClosed(StoreUnavailable):
    """The lane was closed: the service is shutting down (answered 503 with Retry-After)."""


class BatchLane(Generic[I, R]):
    """One thread handing every queued item to ``handle`` at once (see the module).

    ``handle(items)`` returns one outcome per item, in order: its result, or the exception that
    item's caller is to raise.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        name: str,
        handle: Callable[[list[I]], Sequence[R | BaseException]],
    ) -> None:
        self._loop = loop
        self._handle = handle
        self._items: deque[tuple[I, asyncio.Future[R]]] = deque()
        self._wake = threading.Event()
        self._sleeping = False  # the thread is (about to be) waiting for an item
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: I) -> R:
        """``item``'s outcome: its result, or its exception raised here."""
        if self._closed:
            raise LaneClosed("the service is shutting down")
        future: asyncio.Future[R] = self._loop.create_future()
        self._items.append((item, future))
        if self._sleeping:  # a busy thread finds the item without being woken
            self._wake.set()
        return await future

    def close(self) -> None:
        """Finish the items already submitted, then stop the thread (waits for it)."""
        self._closed = True
        self._wake.set()  # wakes a sleeping thread; a busy one sees the flag after its batch
        self._thread.join()

    def _serve(self) -> None:
        while True:
            self._sleeping = True
            if not self._items:  # checked after the flag is up: no item can slip past unseen
                self._wake.wait()
            self._sleeping = False
            self._wake.clear()
            batch = [self._items.popleft() for _ in range(len(self._items))]
            if batch:
                self._loop.call_soon_threadsafe(_deliver, self._run(batch))
            if self._closed and not self._items:
                return

    def _run(self, batch: list[tuple[I, asyncio.Future[R]]]) -> list[_Done]:
        try:
            outcomes = list(self._handle([item for item, _ in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self._handle!r} gave {len(outcomes)} outcomes")
        except BaseException as exc:  # delivered to every caller of the batch, never lost here
            outcomes = [exc] * len(batch)
        return [
            (future, not isinstance(o, BaseException), _carriable(o))
            for (_, future), o in zip(batch, outcomes, strict=True)
        ]


class Lane(BatchLane[tuple[Callable[..., Any], tuple[Any, ...]], Any]):
    """A lane of calls, run one after the other (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        super().__init__(loop, name, _run_calls)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the lane's thread; its result, or its exception raised here."""
        result: T = await self.submit((fn, args))
        return result


def _run_calls(
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]],
) -> list[Any]:
    out: list[Any] = []
    for fn, args in calls:
        try:
            out.append(fn(*args))
        except BaseException as exc:  # its caller's outcome
            out.append(exc)
    return out


def _carriable(outcome: Any) -> Any:
    """A future cannot carry StopIteration: it travels as a RuntimeError."""
    if isinstance(outcome, StopIteration):
        return RuntimeError(f"raised {outcome!r}")
    return outcome


def _deliver(done: list[_Done]) -> None:
    """Resolve each waiting caller's future (on the event loop)."""
    for future, ok, value in done:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
