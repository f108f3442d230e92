"""The read lane: calls run off the event loop, in order, each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.lanes import Lane, LaneClosed


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def test_calls_run_on_the_lane_thread_in_order_each_with_its_own_result() -> None:
    order: list[int] = []

    def work(i: int) -> tuple[int, str]:
        order.append(i)
        return i * i, threading.current_thread().name

    async def main() -> list[tuple[int, str]]:
        lane = Lane(asyncio.get_running_loop(), "test-lane")
        try:
            return await asyncio.gather(*(lane.call(work, i) for i in range(500)))
        finally:
            lane.close()

    results = run(main)
    assert [r[0] for r in results] == [i * i for i in range(500)]
    assert {r[1] for r in results} == {"test-lane"}
    assert order == list(range(500))
    assert threading.current_thread().name not in {r[1] for r in results}


def test_an_exception_reaches_only_its_caller() -> None:
    def work(i: int) -> int:
        if i % 3 == 0:
            raise ValueError(f"bad {i}")
        if i % 3 == 1:
            raise StopIteration  # a future cannot carry this one; it must not hang anybody
        return i

    async def main() -> list[object]:
        lane = Lane(asyncio.get_running_loop(), "test-lane")
        try:
            return await asyncio.gather(
                *(lane.call(work, i) for i in range(30)), return_exceptions=True
            )
        finally:
            lane.close()

    results = run(main)
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, ValueError)
            assert str(result) == f"bad {i}"
        elif i % 3 == 1:
            assert isinstance(result, RuntimeError)
        else:
            assert result == i


def test_a_caller_that_stops_waiting_does_not_stop_the_lane() -> None:
    ran: list[int] = []

    def slow(i: int) -> int:
        time.sleep(0.02)
        ran.append(i)
        return i

    async def main() -> int:
        lane = Lane(asyncio.get_running_loop(), "test-lane")
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(lane.call(slow, 1), timeout=0.001)
            return await lane.call(slow, 2)
        finally:
            lane.close()

    assert run(main) == 2
    assert ran == [1, 2]


def test_close_runs_the_calls_already_made_then_refuses_new_ones() -> None:
    ran: list[int] = []

    async def main() -> None:
        lane = Lane(asyncio.get_running_loop(), "test-lane")
        pending = [asyncio.ensure_future(lane.call(ran.append, i)) for i in range(50)]
        await asyncio.sleep(0)  # every call is queued
        lane.close()
        with pytest.raises(LaneClosed):
            await lane.call(ran.append, 99)
        for task in pending:
            task.cancel()

    run(main)
    assert ran == list(range(50))


def test_calls_made_while_the_lane_is_busy_or_asleep_are_all_answered() -> None:
    """No lost wake-up: bursts and single calls separated by idle gaps, many times over."""

    async def main() -> None:
        lane = Lane(asyncio.get_running_loop(), "test-lane")
        try:
            for round_ in range(200):
                if round_ % 2:
                    await asyncio.sleep(0.0005)  # let the lane fall asleep
                size = 1 + round_ % 7
                got = await asyncio.wait_for(
                    asyncio.gather(*(lane.call(int, str(i)) for i in range(size))), timeout=5
                )
                assert got == list(range(size))
        finally:
            lane.close()

    run(main)
