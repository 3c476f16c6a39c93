"""``massif evaluate``: deletion curves of an analysis, one ranking of its neurons at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..terminal import TqdmProgress, run_guarded
from .app import (
    BATCH_OPTION,
    CLASS_INDEX_OPTION,
    DEVICE_OPTION,
    IMAGE_SIZE_OPTION,
    WEIGHTS_OPTION,
    app,
    build_request,
    one_process,
)


class _Progress(TqdmProgress):
    LABELS = {**TqdmProgress.LABELS, "edit": "attack the class",
              "scores": "score every neuron", "curves": "deletion curves"}
    UNITS = {**TqdmProgress.UNITS, "curves": "mask"}


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="The analysis: its graph.json or the folder holding "
                               "it (massif analyze --out FOLDER, or a workspace's "
                               "graphs/<key>)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for curves.json, "
                                       "curves.svg and curves.png (default: the analysis's "
                                       "folder)."),
    ks: Optional[str] = typer.Option(None, "--ks", help="Comma-separated numbers of neurons to "
                                     "delete (default 1,2,4,8,16,32, each capped at what a "
                                     "ranking holds; all emphasized is always added)."),
    rankings: Optional[str] = typer.Option(None, help="Comma-separated rankings (default all): "
                                           "vulnerability, importance-change, "
                                           "activation-change, gradient-x-activation, votes, "
                                           "random."),
    draws: int = typer.Option(10, help="Random draws per size (10 to 1000)."),
    seed: int = typer.Option(0, help="Seed of the random draws."),
    adaptive: bool = typer.Option(False, "--adaptive", help="Also run a fresh attack through "
                                  "each edited model (slower)."),
    as_json: bool = typer.Option(False, "--json", help="Print curves.json instead of the "
                                 "table."),
    model: Optional[str] = typer.Option(None, help="The analysed model (default: the one the "
                                        "graph names: bundled, bundled-robust, "
                                        "torchvision:NAME, timm:NAME, hf:..., file.py:factory)."),
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = typer.Option(None, help="The analysed dataset (default: the one the "
                                       "graph names)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, as the analysis "
                                         "had them (default: the model's)."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    max_images: Optional[int] = typer.Option(None, help="Use at most this many images of each "
                                             "class (default: the analysis's count)."),
    batch_size: Optional[int] = BATCH_OPTION,
    device: str = DEVICE_OPTION,
) -> None:
    """Deletion curves: for each ranking of the neurons (MASSIF's emphasized ones by
    vulnerability and by importance change, activation change, gradient × activation, Summit's
    votes, random), the ASR at the largest strength and the clean accuracy after deleting its
    top k neurons, and the areas under the curves; prints the table and writes curves.json and
    a plot (SVG and PNG)."""

    def work() -> None:
        from ..devices import resolve_device
        from ..edit import Editor
        from ..edit.curves import check_curves
        from ..files import writable_dir
        from ..report import find_run

        one_process("evaluate")
        graph, path, _ = find_run(run)
        folder = writable_dir(out if out is not None else path.parent,
                              "--out" if out is not None else "the analysis's folder")
        resolve_device(device)
        req = build_request(
            benign=graph.benign.index, target=graph.target.index,
            model=model or graph.model.name, data=data or graph.dataset.name,
            weights=weights, layers=layers, image_size=image_size, class_index=class_index,
            batch_size=batch_size, device=device)
        run_opts = {"max_images": max_images} if max_images is not None else {}
        resolved = Editor.graph_request(req, None, graph, **run_opts).resolve()
        Editor.check_graph(resolved, graph)
        check_curves(resolved, graph, ks, rankings, draws, seed)  # before the class is attacked
        editor = Editor(resolved, graph=graph, sample_size=0, progress=_Progress())
        curves = editor.curves(graph, ks, rankings, draws=draws, seed=seed, adaptive=adaptive,
                               progress=_Progress())
        written = curves.save(folder)
        typer.echo(curves.model_dump_json(indent=2) if as_json else curves.table())
        typer.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)

    run_guarded(work)
