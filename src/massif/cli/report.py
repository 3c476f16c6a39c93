"""``massif report``: one self-contained HTML file for an analysis (no server, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..terminal import run_guarded
from .app import CACHE_OPTION, app, removed_on_failure


@app.command()
def report(
    run: Path = typer.Argument(..., help="The analysis: its graph.json or the folder holding "
                               "it (massif analyze --out FOLDER, or a workspace's "
                               "graphs/<key>)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The HTML file to write."),
    numbers: Optional[Path] = typer.Option(
        None, "--numbers", help="A folder to write the analysis's numbers into: numbers.json "
        "and nodes.csv, edges.csv, asr.csv (and curves.csv when massif evaluate saved "
        "curves.json beside the analysis), as the page's export menu writes them."),
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Write a standalone report: the page for one analysis in one HTML file, with its pictures,
    that opens from disk with no server and no network; with --numbers, also (or only) its
    numbers as JSON and CSV."""

    def work() -> None:
        from ..errors import MassifError
        from ..files import usable_dir, writable_file
        from ..pictures import cache_root
        from ..report import write_report

        if out is None and numbers is None:
            raise MassifError("give --out FILE (the report), --numbers FOLDER (its numbers) "
                              "or both")
        if numbers is not None:
            from ..export import write_numbers

            with removed_on_failure(numbers):
                written = write_numbers(run, numbers)
            typer.echo(f"wrote {', '.join(p.name for p in written)} in {numbers}")
        if out is None:
            return
        writable_file(out, "--out")
        # read, never written: a read-only cache is fine, a file is refused (as by the others)
        usable_dir(cache_root(cache), "--cache" if cache is not None else "the cache folder")
        with removed_on_failure(out.parent):  # a full disk leaves no folder made for nothing
            path, counts = write_report(run, out, cache=cache)
        size = path.stat().st_size / 1e6
        missing = counts["nodes"] - counts["pictures"]
        note = (f"; {missing} of {counts['nodes']} neurons have no feature visualization in the "
                "cache (massif visualize makes them)" if missing else "")
        typer.echo(f"wrote {path} ({size:.1f} MB, {counts['nodes']} neurons{note})")

    run_guarded(work)
