"""Run torch work in a thread that ends with it: ``in_own_thread`` and ``in_background``.

Why. A thread that runs torch's CPU operators keeps a team of OpenMP worker threads for as long
as it lives. GNU OpenMP (libgomp, which PyTorch's Linux wheels ship) lets idle workers spin for a
few milliseconds before they sleep, so the next operator finds them awake; but once the process
holds more OpenMP threads than it has cores, it lets them spin only about a hundred times, and
every parallel operator then waits for sleeping workers to wake. The count includes the idle
teams of every thread that ever ran torch. On the 2-core test machine the same defense search
took 12.0 s from a server thread after the main thread had run torch, against 8.8–10.2 s when no
other team was alive (one process, one run each).

So a long-lived thread (the main thread that serves, an HTTP request pool's threads, the
analysis worker between jobs, a data loader) never runs torch itself: the work goes to a thread
made for it, whose team ends with it. Starting one costs well under a millisecond.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def _start(fn: Callable[[], T], name: str) -> tuple[Future[T], threading.Thread]:
    future: Future[T] = Future()

    def body() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as e:  # handed to whoever waits on the future
            if not future.done():  # (Ctrl+C passed on just after the result was set)
                future.set_exception(e)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return future, thread


def in_background(fn: Callable[[], T], name: str = "massif-compute") -> Future[T]:
    """Start ``fn()`` in a new daemon thread; its result (or exception) arrives in the
    returned future, and the thread ends with it."""
    return _start(fn, name)[0]


def in_own_thread(fn: Callable[[], T], name: str = "massif-compute") -> T:
    """``fn()`` run in a new thread; waits for it and returns its result or raises its
    exception. Ctrl+C while waiting is passed on to that thread (it stops at its next Python
    step, as it would have in the caller's thread), then raised here once it has stopped.

    The wait wakes every 0.1 s: the kernel may hand Ctrl+C's signal to any thread of the
    process, and Python runs its handler in the main thread only when that thread next
    executes, which an untimed wait would never let it do (seen in the suite, where servers'
    threads live beside the test). It waits on the result, not ``Thread.join``: a join that
    Ctrl+C interrupts marks the thread as ended while it still runs, so a second join returns
    at once (seen on CPython 3.11)."""
    future, thread = _start(fn, name)
    try:
        while not future.done():
            futures.wait([future], timeout=0.1)
    except KeyboardInterrupt:
        if not future.done() and thread.is_alive() and thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                       ctypes.py_object(KeyboardInterrupt))
        while not future.done() and thread.is_alive():  # (a second Ctrl+C leaves it running)
            futures.wait([future], timeout=0.1)
        thread.join()
        raise
    thread.join()
    return future.result()
