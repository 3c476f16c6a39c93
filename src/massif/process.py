"""This process: whether torchrun started it, and how SIGTERM ends it. Nothing here imports
torch, so the command line's error path and ``--help`` stay fast."""

from __future__ import annotations


def torchrun() -> bool:
    """Whether torchrun (or a script setting its variables) started this process: one of
    ``WORLD_SIZE`` processes, more than one (``distributed.launched`` without torch)."""
    import os

    try:
        return int(os.environ.get("WORLD_SIZE") or 1) > 1
    except ValueError:  # a broken variable: said by the command that reads it
        return False


def quiet_sigterm(status: int = 2) -> None:
    """Let SIGTERM end the process at once with ``status`` (main thread only; else a no-op)."""
    import os
    import signal

    try:
        signal.signal(signal.SIGTERM, lambda _sig, _frame: os._exit(status))
    except ValueError:  # not the main thread
        pass
