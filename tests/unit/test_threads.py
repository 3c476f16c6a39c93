"""``massif.threads.in_own_thread``: the result or the error comes back; the thread ends."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from massif.errors import MassifError
from massif.threads import in_own_thread


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


@pytest.mark.parametrize("to", ["the process", "a helper thread"])
def test_ctrl_c_while_waiting_stops_the_work_too(ctrl_c_raises, to):
    """Ctrl+C reaches the waiting caller, and the work stops as it would have in the caller's
    own thread (a daemon thread left running would go on writing after the command ended).

    The kernel may hand a process's SIGINT to any of its threads; Python then runs the handler
    in the main thread only when that thread next executes. Sent to a helper thread on purpose,
    the wait must still notice it (the work would otherwise run on to its 30 s deadline)."""
    started, how = threading.Event(), []

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
        time.sleep(0.1)
        if to == "the process":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        in_own_thread(work)
    assert how == ["stopped"]
