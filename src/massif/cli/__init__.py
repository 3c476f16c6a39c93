"""The ``massif`` command line. Heavy modules (torch) are imported inside commands, so
``massif --help`` answers at once. Bad input ends with one ``massif: error: ...`` line on stderr
and exit status 2, never a traceback (``terminal.py``).

``app.py`` holds the command group and the shared options; each sibling module adds commands to
it: ``analysis`` (analyze, download-data, demo), ``pictures`` (visualize, examples), ``edit``,
``serve``, ``report``, ``compare``, ``evaluate``.
"""

from . import (  # noqa: F401  (add commands)
    analysis,
    compare,
    edit,
    evaluate,
    pictures,
    report,
    serve,
)
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
