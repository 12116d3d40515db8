"""The private event-loop thread: results, errors, interrupts, and use under a running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from cometnb._client.loop import LoopThread, loop_thread


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
