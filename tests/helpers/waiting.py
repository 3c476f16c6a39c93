"""Waiting on an event, never for a fixed time: ``wait_for`` polls a check until it holds (or
fails the test at a deadline that only a hang reaches), ``settled`` polls a server job's status
until it is neither queued nor running."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """``check()`` again every ``every`` seconds until it returns something true, which is
    returned; an ``AssertionError`` saying ``what`` was awaited after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(every)


def settled(client: Any, url: str, timeout: float = 60.0, every: float = 0.05) -> dict:
    """The job status that ``client.get(url)`` answers (``/analyses/KEY.json`` or
    ``/defenses/ID.json``) once its state is neither ``queued`` nor ``running``. ``client`` is
    anything with ``get``: a ``TestClient``, an ``httpx.Client``, or ``httpx`` itself with a
    whole URL."""
    last: dict = {}

    def done() -> bool:
        nonlocal last
        last = client.get(url).json()
        return last["state"] not in ("queued", "running")

    try:
        wait_for(done, timeout, f"{url} to settle", every)
    except AssertionError as e:
        raise AssertionError(f"{e}; the last status: {last}") from None
    return last
