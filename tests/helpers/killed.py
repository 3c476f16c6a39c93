"""Files that a process killed mid-write leaves behind, for the tests of their removal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def killed_writer(path: Path) -> Path:
    """The temporary file that a process killed (SIGKILL) while writing ``path`` leaves."""
    code = ("import sys, time; from massif.files import create_temp; create_temp(sys.argv[1]); "
            "print(flush=True); time.sleep(60)")
    before = set(path.parent.glob(f".{path.name}.*.part"))
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    proc.stdout.readline()
    proc.kill()
    proc.wait()
    (part,) = set(path.parent.glob(f".{path.name}.*.part")) - before
    return part


def aged(path: Path) -> Path:
    """``path`` dated an hour back (as a file of a run before this test's process)."""
    then = time.time() - 3600
    os.utime(path, (then, then))
    return path
