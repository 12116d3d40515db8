"""The private event-loop thread: results, errors, interrupts, and use under a running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from cometnb._client.loop import Escaped, LoopThread, loop_thread


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    thread = LoopThread(name="cometnb-test-loop")
    yield thread
    thread.stop()


async def _value(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


async def _fail() -> None:
    raise ValueError("inner failure")


def test_run_returns_the_result_on_another_thread(lt: LoopThread) -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert lt.run(_value(21)) == 42
    assert lt.run(where()) == "cometnb-test-loop"


def test_run_propagates_exceptions(lt: LoopThread) -> None:
    with pytest.raises(ValueError, match="inner failure"):
        lt.run(_fail())


def test_submit_returns_a_concurrent_future(lt: LoopThread) -> None:
    future = lt.submit(_value(5))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5) == 10


def test_run_works_while_the_caller_has_a_running_loop(lt: LoopThread) -> None:
    """What Jupyter does: a sync call from code running inside the kernel's loop."""

    async def cell() -> int:
        return lt.run(_value(4))

    assert asyncio.run(cell()) == 8


def test_run_from_its_own_loop_is_refused(lt: LoopThread) -> None:
    async def nested() -> None:
        coro = _value(1)
        try:
            lt.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError, match="own loop"):
        lt.run(nested())


def test_stop_then_reuse(lt: LoopThread) -> None:
    assert lt.run(_value(1)) == 2
    lt.stop()
    assert lt.run(_value(2)) == 4


def test_keyboard_interrupt_cancels_the_task_and_lets_it_clean_up(lt: LoopThread) -> None:
    cleaned = threading.Event()
    started = threading.Event()

    async def long_job() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleanup that itself awaits (e.g. recording to history)
            cleaned.set()
            raise

    def interrupt() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, like Jupyter's stop

    assert threading.current_thread() is threading.main_thread()
    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        lt.run(long_job())
    assert cleaned.is_set()


def test_the_shared_loop_thread_is_one_daemon_thread() -> None:
    shared = loop_thread()
    assert shared is loop_thread()

    async def daemon() -> bool:
        return threading.current_thread().daemon

    assert shared.run(daemon())


def test_an_interrupt_raised_inside_a_task_reaches_the_caller_and_the_loop_lives(
    lt: LoopThread,
) -> None:
    """A callback or a test transport raising KeyboardInterrupt on the loop: asyncio would
    re-raise it out of run_forever and end the thread; the caller gets it instead."""

    async def interrupted() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lt.run(interrupted())
    assert lt.run(_value(3)) == 6  # same thread, still running


def test_an_interrupt_inside_a_submitted_task_comes_out_of_its_future(lt: LoopThread) -> None:
    """``submit`` (a grid's or a batch's run) carries it the same way: the future holds it as
    ``Escaped`` and the loop goes on."""

    async def interrupted() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    error = lt.submit(interrupted()).exception(timeout=10)
    assert isinstance(error, Escaped) and isinstance(error.escaped, KeyboardInterrupt)
    assert lt.run(_value(3)) == 6


def test_a_relay_runs_what_the_task_posts_on_the_callers_thread_in_order(
    lt: LoopThread,
) -> None:
    from cometnb._client.loop import Relay

    relay = Relay()
    ran: list[tuple[int, str]] = []

    async def work() -> str:
        for i in range(50):
            relay.post(lambda i=i: ran.append((i, threading.current_thread().name)))
            if i % 7 == 0:
                await asyncio.sleep(0)
        return threading.current_thread().name

    assert lt.run(work(), relay) == "cometnb-test-loop"
    assert [i for i, _ in ran] == list(range(50))  # every post, before the result, in order
    assert {name for _, name in ran} == {threading.current_thread().name}


def test_call_awaits_the_loop_from_another_loop_and_a_cancel_waits_for_clean_up(
    lt: LoopThread,
) -> None:
    cleaned = threading.Event()

    async def long_job() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # recording the cancellation
            cleaned.set()
            raise

    async def caller() -> int:
        assert await lt.call(_value(5)) == 10
        task = asyncio.create_task(lt.call(long_job()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return 1

    assert asyncio.run(caller()) == 1
    assert cleaned.is_set()


def test_stop_closes_the_pools_it_adopted(lt: LoopThread) -> None:
    closed: list[str] = []

    class Pool:
        async def aclose(self) -> None:
            await asyncio.sleep(0)
            closed.append(threading.current_thread().name)

    pool = Pool()
    lt.adopt(pool)
    assert lt.run(_value(1)) == 2
    lt.stop()
    assert closed == ["cometnb-test-loop"]  # on the loop its connections belong to
