"""Files on disk: atomic writes, and checks that a path can be written before any work starts.

``write_atomic`` writes a temporary file beside the target and renames it over the target, so a
reader (or a crash) never sees half a file. The temporary file is created with mode ``0o666``
and the kernel applies the process's umask to it, as for any new file: nothing here reads or
changes the process-wide umask, so it is safe from any thread.

A process killed while it writes (kill -9, a power cut) leaves its temporary file behind. Its
name says which machine and process made it, so the next process that writes in that folder
removes it, and only it: a temporary file of a process still running (another rank of a
torchrun, a second command on the same cache) is never touched (``remove_stale_parts``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path

from .errors import MassifError, short

__all__ = ["create_temp", "make_dir", "remove_stale_parts", "short", "slug", "usable_dir",
           "writable_dir", "writable_file", "write_atomic"]

# ``.<name>.<host>-<pid>.<random>.part``: <host> is a hash of this machine's name (a folder may
# be shared between machines, whose process ids say nothing about each other)
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_PART = re.compile(r"\..+\.([0-9a-f]{6})-([0-9]+)\.[0-9a-f]{8}\.part")
_STARTED = time.time()  # (about) when this process started: its own files are all newer
_SWEPT: set[Path] = set()  # the folders this process has cleared of stale temporary files


def slug(text: str) -> str:
    """Lower-case letters, digits and dashes: ``"T-shirt/top"`` → ``"t-shirt-top"``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def as_path(value: object, what: str) -> Path:
    """``value`` as a ``Path``; anything but a string or path-like is a one-line error naming
    ``what`` (``Path(5)`` would be a ``TypeError`` from deep inside pathlib)."""
    if not isinstance(value, (str, os.PathLike)):
        raise MassifError(f"{what} must be a file path, not {type(value).__name__}")
    return Path(value)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader (or a crash) never sees half a file.

    An error names ``path``, never the temporary file (which is gone by then): that is the file
    the user asked for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _error_naming(e, path) from None
        raise
    return path


def create_temp(path: str | Path) -> tuple[int, Path]:
    """A new empty temporary file beside ``path`` (``.<name>.<host>-<pid>.<random>.part``, so
    a crash leaves no file that looks finished), open for writing: its descriptor and its path.
    Its mode is ``0o666`` less the umask, what ``open()`` gives a new file (``mkstemp``'s
    ``0o600`` would stay on the file once renamed). An error names ``path``.

    The first time a process writes in a folder, it removes the folder's stale temporary files
    (``remove_stale_parts``)."""
    path = Path(path)
    if path.parent not in _SWEPT:
        _SWEPT.add(path.parent)
        remove_stale_parts(path.parent)
    tmp = path.parent / f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
    except OSError as e:
        raise _error_naming(e, path) from None


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the temporary files in ``folder`` that killed processes left, and return them.

    A file is stale when all three say so: it was made on this machine, by a process that no
    longer runs, before this process started. Anything else stays: a file of another machine
    (whose processes this one cannot see), of a running process, or of a process id that
    has been given to a new process since, and files of other names (including the
    ``.<name>.<random>.part`` of earlier versions, which do not say who wrote them)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder (yet), or one we cannot list: nothing to do
        return removed
    for entry in entries:
        m = _PART.fullmatch(entry.name)
        if not m or m.group(1) != _HOST or _running(int(m.group(2))):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < _STARTED:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already (another process cleared it), or not ours to remove
            pass
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (when that cannot be told: yes)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would be a Ctrl+C event on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (or no process id at all)
        return True
    return True


def _error_naming(error: OSError, path: str | Path) -> OSError:
    """``error`` again, naming ``path`` (what the user asked for) instead of a temporary file:
    the one-line message (``terminal.run_guarded``) shows the error's file name."""
    return OSError(error.errno, error.strerror or str(error), str(path))


def _os_reason(e: OSError) -> str:
    return e.strerror or errno.errorcode.get(e.errno or 0, type(e).__name__)


def writable_dir(path: str | Path, what: str) -> Path:
    """Check, before any work, that ``path`` is (or can become) a folder we can write in.

    Creates nothing: it walks up to the nearest existing ancestor and checks that one. Raises a
    one-line ``MassifError`` naming ``what`` (``--out``, ``--cache``, ...) otherwise.
    """
    path = Path(path)
    probe = _existing_ancestor(path, what)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MassifError(f"{what} {path}: cannot write in {probe} (permission denied)")
    return path


def usable_dir(path: str | Path, what: str) -> Path:
    """Check, before any work, that ``path`` is a folder or could be one (it is no file, nor
    under one), for a folder that is only read from: a read-only one is fine, and a missing
    one is simply empty. Same messages as ``writable_dir``."""
    path = Path(path)
    _existing_ancestor(path, what)
    return path


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest existing folder of ``path`` (itself included); a one-line ``MassifError``
    when that is a file or ``path`` a broken link."""
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise MassifError(f"{what} {path} is a broken symbolic link")
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if probe.exists() and not probe.is_dir():
        if probe == path:
            raise MassifError(f"{what} {path} is a file, not a folder")
        raise MassifError(f"{what} {path}: {probe} is a file, not a folder")
    return probe


def writable_file(path: str | Path, what: str) -> Path:
    """Check, before any work, that a file can be written at ``path`` (an existing regular file
    is replaced; a folder is refused)."""
    path = Path(path)
    if path.is_dir():
        raise MassifError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise MassifError(f"{what} {path} exists and is not a regular file")
    if path.name in ("", ".", ".."):
        raise MassifError(f"{what} {path}: give a file name")
    writable_dir(path.parent, what)
    if path.parent.is_dir():  # try it: permissions do not tell for read-only or special
        try:  # file systems (root passes os.access on /sys, then cannot create a file there)
            fd, tmp = create_temp(path)
        except OSError as e:
            raise MassifError(f"{what} {path}: cannot write in {path.parent} "
                              f"({_os_reason(e)})") from None
        os.close(fd)
        tmp.unlink(missing_ok=True)
    return path


def make_dir(path: str | Path, what: str) -> Path:
    """``mkdir -p`` with a one-line ``MassifError`` instead of an ``OSError``."""
    path = writable_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MassifError(f"cannot create {what} {path}: {_os_reason(e)}") from None
    return path
