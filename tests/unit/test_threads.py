"""``massif.threads.in_own_thread``: the result or the error comes back; the thread ends."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import threading
import time

import pytest

from massif.errors import MassifError
from massif.threads import in_own_thread
from tests.helpers.waiting import wait_for


def test_the_result_comes_back_from_a_thread_that_then_ends():
    seen: list[threading.Thread] = []

    def work(a: int, *, b: int) -> int:
        seen.append(threading.current_thread())
        return a + b

    assert in_own_thread(lambda: work(2, b=3), "massif-test") == 5
    assert seen[0] is not threading.current_thread() and seen[0].name == "massif-test"
    assert not seen[0].is_alive()


def test_the_error_is_raised_in_the_caller_as_it_was():
    def work() -> None:
        raise MassifError("no such class 'Sneakr'")

    with pytest.raises(MassifError, match="Sneakr"):
        in_own_thread(work)


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl+C handler for the test: a process started in the background by a
    shell without job control (CI's runner, ``cmd &``) starts with SIGINT ignored, and Python
    then installs no handler, so the signal would be dropped."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def waiting_on_the_result(thread_id: int) -> bool:
    """Whether the thread is in ``in_own_thread``'s wait for the work's result (not still
    starting the work's thread, where a Ctrl+C would leave the work running)."""
    codes = set()
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        codes.add(frame.f_code)
        frame = frame.f_back
    return {in_own_thread.__code__, concurrent.futures.wait.__code__} <= codes


@pytest.mark.parametrize("to", ["the process", "a helper thread"])
def test_ctrl_c_while_waiting_stops_the_work_too(ctrl_c_raises, to):
    """Ctrl+C reaches the waiting caller, and the work stops as it would have in the caller's
    own thread (a daemon thread left running would go on writing after the command ended).

    The kernel may hand a process's SIGINT to any of its threads; Python then runs the handler
    in the main thread only when that thread next executes. Sent to a helper thread on purpose,
    the wait must still notice it (the work would otherwise run on to its 30 s deadline)."""
    started, how, caller = threading.Event(), [], threading.get_ident()

    def work() -> None:
        deadline = time.monotonic() + 30
        try:
            started.set()
            while time.monotonic() < deadline:
                time.sleep(0.01)
            how.append("ran to its deadline")
        except KeyboardInterrupt:
            how.append("stopped")
            raise

    def press_ctrl_c() -> None:
        started.wait(10)
        wait_for(lambda: waiting_on_the_result(caller), 10, "in_own_thread to wait")
        if to == "the process":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        in_own_thread(work)
    assert how == ["stopped"]
