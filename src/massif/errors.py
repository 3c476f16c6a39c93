"""The one exception type a user sees: its message is printed as a single line by the CLI."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MassifError(Exception):
    """Bad input or an unusable environment, described in one line for the user."""


def short(text: object, limit: int = 60) -> str:
    """A quoted excerpt of user input for an error message: at most ``limit`` characters, so a
    huge input is never echoed back whole."""
    s = str(text)
    return repr(s) if len(s) <= limit else repr(s[: limit - 1] + "…")


def is_index(text: object) -> bool:
    """Whether ``text`` is a small whole number in ASCII digits (``"12"``; not ``"+1"``, ``"²"``,
    a full-width ``"１"`` or thousands of digits, which ``int()`` would refuse or choke on)."""
    s = str(text).strip()
    return s.isascii() and s.isdigit() and len(s) <= 9


def did_you_mean(word: str, choices: Iterable[str], what: str) -> MassifError:
    """An "unknown X" error that lists the closest valid names (or the first few if none match)."""
    choices = list(choices)
    word = str(word)
    if len(word) > 200:  # nothing that long is a name; don't spend time comparing it
        return MassifError(f"unknown {what} {short(word)}")
    close = difflib.get_close_matches(word, choices, n=5, cutoff=0.5)
    if not close:
        close = [c for c in choices if word.lower() in c.lower()][:5]
    if close:
        hint = "did you mean: " + ", ".join(close) + "?"
    else:
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        hint = f"choose from: {shown}"
    return MassifError(f"unknown {what} {short(word)}; {hint}")


CLI_MEMORY_ADVICE = ("pass a smaller --batch-size where the command takes one, or set "
                     "MASSIF_MEMORY_BUDGET (GB) to what this machine can spare; a run with "
                     "--out resumes from its last checkpoint")
SERVER_MEMORY_ADVICE = ("start the server with a smaller --batch-size, or with "
                        "MASSIF_MEMORY_BUDGET (GB) set to what this machine can spare")


def out_of_memory(error: BaseException, advice: str = CLI_MEMORY_ADVICE) -> str | None:
    """One line for an allocation that failed (torch's ``OutOfMemoryError``, CUDA's "out of
    memory" ``RuntimeError``, the CPU allocator's, ``MemoryError``), ending with ``advice``;
    ``None`` for any other error."""
    first = (str(error).splitlines() or [""])[0] or type(error).__name__
    gpu = "CUDA" in first or "GPU" in first
    if type(error).__name__ == "OutOfMemoryError" or (
            isinstance(error, RuntimeError) and "out of memory" in first.lower()):
        where = "GPU memory" if gpu or type(error).__name__ == "OutOfMemoryError" else "memory"
    elif isinstance(error, MemoryError) or (
            isinstance(error, RuntimeError) and "can't allocate memory" in first):
        where = "memory"
    else:
        return None
    return f"out of {where} ({first[:160]}): {advice}"
