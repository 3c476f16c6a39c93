"""The terminal side of the command line: progress bars on stderr, and bad input as one
``massif: error: ...`` line with exit status 2 (never a traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from .process import quiet_sigterm, torchrun

OPEN_BARS: list = []  # progress bars to close (ending their line) before an error message


class Group(TyperGroup):
    """The command group: a usage error (an unknown option, a value of the wrong type) is one
    ``massif: error: ...`` line and exit status 2, like every other bad input, instead of
    Click's boxed usage text. ``massif`` alone still prints the help."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        if torchrun():  # torchrun stopping this process because another failed: status 2
            quiet_sigterm()  # (distributed.start then says why, once the processes have joined)
        try:
            code = super().main(*args, **kwargs)
            # without standalone mode Click returns an Exit's code instead of exiting
            end(code if isinstance(code, int) else 0)
        except typer.Abort:
            typer.echo("massif: interrupted", err=True)
            end(130)
        except Exception as e:  # Click's own classes (typer vendors a copy of Click): by shape
            code = getattr(e, "exit_code", None)
            if code is None:
                raise
            ctx = getattr(e, "ctx", None)
            if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())
                end(0)
            if not hasattr(e, "format_message"):  # Exit: --help, or a command's own exit
                end(code)
            where = getattr(ctx, "command_path", "massif").partition(" ")[2]
            if says_error():
                typer.echo(f"massif: error: {where + ': ' if where else ''}"
                           f"{e.format_message()[:300]} (see --help)", err=True)
            end(code)


def end(code: int) -> NoReturn:
    """``sys.exit(code)``; a process that torchrun started ends at once instead (its output
    flushed, its files written and synced already): a SIGTERM from torchrun stopping the others
    while the interpreter shuts down would end it by that signal, not with its own status."""
    if torchrun():
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def say(message: str) -> None:
    """A progress note on stderr, only when a person watches it (a terminal): piped or
    captured, stderr holds nothing but progress bars and errors."""
    if sys.stderr.isatty():
        typer.echo(message, err=True)


def fail(message: str) -> None:
    """Close the open progress bars (ending their line), print one error line, exit 2.

    Under torchrun only one process of the run prints the line (``says_error``); every
    process exits 2. From then on a SIGTERM (torchrun stopping the ranks of a failed run while
    this one shuts down) ends the process at once with the same status: the line is said, and
    a second message (or a traceback from inside interpreter shutdown) would only bury it."""
    while OPEN_BARS:
        OPEN_BARS.pop().close()
    if says_error():
        typer.echo(f"massif: error: {message}", err=True)
    quiet_sigterm()
    raise typer.Exit(2)


def says_error() -> bool:
    """Whether this process prints its error line: yes, but of the processes of a torchrun
    only one does (``distributed.says_error``)."""
    if not torchrun():
        return True
    from .distributed import says_error as first_to_fail

    return first_to_fail()


def run_guarded(fn: Callable[[], object]) -> object:
    """Run ``fn``; a ``MassifError``, an ``OSError`` (the disk) or an allocation the machine
    could not make becomes one line on stderr and exit status 2."""
    from .errors import MassifError, out_of_memory

    try:
        return fn()
    except MassifError as e:
        fail(str(e))
    except OSError as e:  # the disk, not the input: a full disk, a folder that went away
        where = f" ({e.filename})" if e.filename else ""
        fail(f"{e.strerror or type(e).__name__}{where}")
    except (RuntimeError, MemoryError) as e:  # an allocation too big for the machine
        message = out_of_memory(e)
        if message is None:
            raise
        fail(message)
    except KeyboardInterrupt:
        typer.echo("massif: interrupted", err=True)
        raise typer.Exit(130) from None


class TqdmProgress:
    """``progress(stage, done, total)`` drawn as one tqdm bar per stage on stderr."""

    LABELS = {"means": "class means (clean, both classes)",
              "profile": "profile neurons (all strengths)", "edges": "influence + faithfulness",
              "visualize": "feature visualizations", "examples": "dataset examples"}
    UNITS = {"visualize": "neuron"}

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=self.LABELS.get(stage, stage),
                       unit=self.UNITS.get(stage, "img"),
                       file=sys.stderr, leave=True, dynamic_ncols=True)
            self.bars[stage] = bar
            OPEN_BARS.append(bar)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            if bar in OPEN_BARS:
                OPEN_BARS.remove(bar)
