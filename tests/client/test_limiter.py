"""The concurrency limit: a semaphore whose slots may be given back early."""

from __future__ import annotations

import asyncio
import contextlib

from cometnb._client.runner import AdaptiveLimit


def test_at_most_limit_holders_at_a_time() -> None:
    peak = 0

    async def main() -> None:
        limit = AdaptiveLimit(3)

        async def work() -> None:
            nonlocal peak
            async with limit.slot():
                peak = max(peak, limit.active)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(work() for _ in range(10)))
        assert limit.active == 0

    asyncio.run(main())
    assert peak == 3


def test_cancelled_waiters_and_holders_release_their_slots() -> None:
    async def main() -> int:
        limit = AdaptiveLimit(1)
        gate = asyncio.Event()

        async def hold() -> None:
            async with limit.slot():
                await gate.wait()

        holder = asyncio.create_task(hold())
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        waiter.cancel()
        holder.cancel()
        await asyncio.gather(holder, waiter, return_exceptions=True)
        async with limit.slot():  # would hang if a slot leaked
            return limit.active

    assert asyncio.run(asyncio.wait_for(main(), 5)) == 1


def test_a_slot_released_early_lets_the_next_holder_in() -> None:
    async def main() -> list[str]:
        limit = AdaptiveLimit(1)
        order: list[str] = []
        stored = asyncio.Event()

        async def first() -> None:
            async with limit.slot() as slot:
                order.append("first sent")
                slot.release()
                slot.release()  # a second release (and the exit) give nothing back twice
                await stored.wait()  # "storing" while the next request runs
                order.append("first stored")

        async def second() -> None:
            await asyncio.sleep(0)  # let first take the slot
            async with limit.slot() as slot:
                order.append("second sent")
                assert slot.held and limit.active == 1
            stored.set()

        await asyncio.gather(first(), second())
        assert limit.active == 0 and limit.finishing == 0
        return order

    order = asyncio.run(asyncio.wait_for(main(), 5))
    assert order == ["first sent", "second sent", "first stored"]


def test_holders_that_released_early_are_capped_at_twice_the_limit() -> None:
    # Results read faster than they are stored must not pile up in memory: with a limit of
    # 1, two may be storing and one in flight; the fourth request waits for a store to end.
    async def main() -> tuple[list[int], int, int]:
        limit = AdaptiveLimit(1)
        store = asyncio.Event()
        started: list[int] = []

        async def one(i: int) -> None:
            async with limit.slot() as slot:
                started.append(i)
                slot.release()  # answer read
                await store.wait()  # … and being stored

        tasks = [asyncio.create_task(one(i)) for i in range(4)]
        for _ in range(20):
            await asyncio.sleep(0)
        seen = (list(started), limit.finishing)
        store.set()
        await asyncio.gather(*tasks)
        return seen[0], seen[1], limit.finishing

    started, finishing, finally_finishing = asyncio.run(asyncio.wait_for(main(), 5))
    assert started == [0, 1] and finishing == 2
    assert finally_finishing == 0


def test_a_cancelled_holder_that_released_early_stops_counting_as_finishing() -> None:
    async def main() -> tuple[int, int]:
        limit = AdaptiveLimit(2)

        async def stuck() -> None:
            async with limit.slot() as slot:
                slot.release()
                await asyncio.sleep(60)

        task = asyncio.create_task(stuck())
        await asyncio.sleep(0)
        during = limit.finishing
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return during, limit.finishing + limit.active

    assert asyncio.run(asyncio.wait_for(main(), 5)) == (1, 0)


def test_a_slot_follows_its_request_a_429_keeps_the_limit_and_received_releases() -> None:
    from cometnb._core.generations import ClientEvent

    async def main() -> tuple[int, int, int, int]:
        limit = AdaptiveLimit(4)
        async with limit.slot() as slot:
            slot.follow(ClientEvent("waiting", 2, 1.0, "HTTP 429"))
            throttled = limit.limit
            slot.follow(ClientEvent("sending", 2))  # other events change nothing
            held = limit.active
            slot.follow(ClientEvent("received"))
            after = (limit.active, limit.finishing)
        return throttled, held, *after

    # A 429 no longer halves the limit (the pacer spaces sends instead).
    assert asyncio.run(asyncio.wait_for(main(), 5)) == (4, 1, 0, 1)
