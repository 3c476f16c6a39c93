"""Run torch work in a thread that ends with it: ``in_own_thread(fn, *args)``.

Why. A thread that runs torch's CPU operators keeps a team of OpenMP worker threads for as long
as it lives. GNU OpenMP (libgomp, which PyTorch's Linux wheels ship) lets idle workers spin for a
few milliseconds before they sleep, so the next operator finds them awake; but once the process
holds more OpenMP threads than it has cores, it lets them spin only about a hundred times, and
every parallel operator then waits for sleeping workers to wake. The count includes the idle
teams of every thread that ever ran torch. On the 2-core test machine the same defense search
took 12.0 s from a server thread after the main thread had run torch, against 8.8–10.2 s when no
other team was alive (one process, one run each).

So a long-lived thread (the main thread that serves, an HTTP request pool's threads, the
analysis worker between jobs) never runs torch itself: the work goes to a thread made for it,
whose team ends with it. Starting one costs well under a millisecond.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_own_thread(fn: Callable[..., T], *args: Any, name: str = "massif-compute",
                  **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` run in a new thread; waits for it and returns its result or
    raises its exception. The thread is a daemon, so Ctrl+C in the caller ends the process."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller, re-raised there
            box["error"] = e

    worker = threading.Thread(target=body, name=name, daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box.pop("error")
    return box["value"]
