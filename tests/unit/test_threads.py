"""``massif.threads.in_own_thread``: the result or the error comes back; the thread ends."""

from __future__ import annotations

import threading

import pytest

from massif.errors import MassifError
from massif.threads import in_own_thread


def test_the_result_comes_back_from_a_thread_that_then_ends():
    seen: list[threading.Thread] = []

    def work(a: int, *, b: int) -> int:
        seen.append(threading.current_thread())
        return a + b

    assert in_own_thread(work, 2, b=3, name="massif-test") == 5
    assert seen[0] is not threading.current_thread() and seen[0].name == "massif-test"
    assert not seen[0].is_alive()


def test_the_error_is_raised_in_the_caller_as_it_was():
    def work() -> None:
        raise MassifError("no such class 'Sneakr'")

    with pytest.raises(MassifError, match="Sneakr"):
        in_own_thread(work)
