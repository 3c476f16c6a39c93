"""``python -m massif``: the same command line as ``massif``."""

from .cli import main

main()
