"""The real ``massif`` console script, as the tests run it: installed beside this Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MASSIF = str(Path(sys.executable).parent / "massif")


def run_massif(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``massif ARGS`` run to its end with no input; its output as text (``kw`` go to
    ``subprocess.run``: ``env``, ``cwd``)."""
    return subprocess.run([MASSIF, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
