"""``massif analyze``, ``massif demo`` and ``massif download-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..terminal import TqdmProgress, fail, run_guarded, say
from .app import (
    ATTACK_OPTION,
    BATCH_OPTION,
    BENIGN_OPTION,
    CACHE_OPTION,
    CLASS_INDEX_OPTION,
    DATA_OPTION,
    DEFAULT_BENIGN,
    DEFAULT_TARGET,
    DEVICE_OPTION,
    EXAMPLES_IMAGES_OPTION,
    IMAGE_SIZE_OPTION,
    MAX_IMAGES_OPTION,
    MAX_STRENGTH_OPTION,
    MODEL_OPTION,
    TARGET_OPTION,
    WEIGHTS_OPTION,
    WORKERS_OPTION,
    app,
    build_request,
    check_port,
    made_pictures,
    one_process,
    parse_floats,
    picture_cache,
    removed_on_failure,
)


@app.command()
def analyze(
    benign: str = BENIGN_OPTION,
    target: str = TARGET_OPTION,
    attack: str = ATTACK_OPTION,
    untargeted: bool = typer.Option(False, "--untargeted", help="Untargeted attack: success "
                                    "is any wrong class; the attacked graph is still measured "
                                    "toward --target."),
    max_strength: Optional[float] = MAX_STRENGTH_OPTION,
    steps: int = typer.Option(8, help="Number of strengths, evenly spaced from 0 to the "
                              "maximum, 0 included."),
    strengths: Optional[str] = typer.Option(None, help="Explicit increasing strengths, e.g. "
                                            "0,0.5,1,2 (overrides --max-strength/--steps)."),
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = DATA_OPTION,
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers (module names "
                                         "from named_modules()), in any order: they are "
                                         "analysed in the order the forward pass runs them. "
                                         "NAME@channels, @channels_last or @tokens+N states "
                                         "where a layer's units are (docs/models.md)."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    nodes_per_layer: int = typer.Option(
        8, help="Top N neurons per layer in each graph (a layer narrower than 3N takes a third "
        "of its units: docs/method.md)."),
    edges_per_node: int = typer.Option(4, help="Top E incoming edges per node."),
    importance: str = typer.Option("attribution", help="attribution (gradient x activation)"
                                   " or votes (Summit)."),
    batch_size: Optional[int] = BATCH_OPTION,
    workers: int = WORKERS_OPTION,
    max_images: Optional[int] = MAX_IMAGES_OPTION,
    device: str = DEVICE_OPTION,
    out: Optional[Path] = typer.Option(None, help="Output folder for graph.json "
                                       "(default runs/<benign>-<target>-<attack>)."),
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Make the feature "
                                  "visualizations and dataset examples the graph's neurons "
                                  "still lack (cached per model)."),
    cache: Optional[Path] = CACHE_OPTION,
    examples_images: int = EXAMPLES_IMAGES_OPTION,
) -> None:
    """Analyse an attack on one class: write graph.json and print a summary.

    A killed run resumes where it stopped when started again with the same options. Under
    torchrun (`torchrun --nproc-per-node N -m massif analyze ...`) the processes share the
    images and rank 0 writes the results (see docs/scale.md)."""

    def work() -> None:
        from ..analysis import run
        from ..devices import resolve_device
        from ..distributed import start, stop
        from ..download import missing_folders, remove_empty
        from ..files import make_dir, slug, writable_dir

        if examples_images < 1:
            fail("--examples-images must be at least 1")
        req = build_request(
            benign=benign, target=target, model=model, data=data, weights=weights,
            layers=layers, image_size=image_size, class_index=class_index, attack=attack,
            targeted=not untargeted, max_strength=max_strength, steps=steps,
            strengths=parse_floats(strengths), nodes_per_layer=nodes_per_layer,
            edges_per_node=edges_per_node, importance=importance, max_images=max_images,
            batch_size=batch_size, workers=workers, device=device)
        world = start(resolve_device(device))
        try:
            default = Path("runs") / f"{slug(benign)[:40]}-{slug(target)[:40]}-{slug(attack)[:20]}"
            folder, cache_dir = Path(out or default), cache
            if world.main:  # rank 0 alone writes: its machine needs --out, the others need not
                folder = writable_dir(folder, "--out")  # checked now, made once all is known
                cache_dir = picture_cache(cache, create=False) if pictures else None
                say(f"loading model {model} ...")
            resolved = req.resolve()
            made: list[list[Path]] = []  # the folders this run makes, innermost first
            if world.main:
                made.append(missing_folders(folder))
                make_dir(folder, "--out")
                if cache_dir is not None:
                    made.append(missing_folders(cache_dir))
                    make_dir(cache_dir, "--cache")
            try:
                graph = run(resolved, progress=TqdmProgress() if world.main else None,
                            resume_dir=folder, world=world)
                path = graph.save(folder / "graph.json") if world.main else None
            except BaseException:  # (a bad image, Ctrl+C): what it made and left empty goes;
                for folders in reversed(made):  # one holding checkpoints stays, to resume
                    remove_empty(folders)
                raise
            if pictures:
                made_pictures(resolved.model, graph, resolved.dataset, device,
                              req.batch_size, cache_dir, examples_images, world)
            if not world.main:
                return
            typer.echo(graph.summary())
            typer.echo(f"\nwrote {path}")
        finally:
            stop()

    run_guarded(work)


@app.command("download-data")
def download_data(
    dest: Optional[Path] = typer.Option(None, help="Folder (default fashion-mnist in the "
                                        "cache: $MASSIF_CACHE, else $XDG_CACHE_HOME/massif, else "
                                        "~/.cache/massif)."),
    url: Optional[str] = typer.Option(None, help="Mirror to download from."),
) -> None:
    """Download Fashion-MNIST from its official source (only needed without Debian's
    dataset-fashion-mnist package)."""

    def work() -> None:
        from ..download import check_url, download_fashion_mnist
        from ..files import writable_dir

        if url is not None:
            check_url(url, "--url")
        if dest is not None:  # checked now; the download makes it, and removes it if it fails
            writable_dir(dest, "--dest")
        path = download_fashion_mnist(dest, url)
        typer.echo(f"Fashion-MNIST is in {path}")

    run_guarded(work)


@app.command()
def demo(
    workspace: Path = typer.Option(Path("runs/demo"), help="Workspace folder."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Only analyse and print."),
) -> None:
    """The embedded default: Sneaker -> Sandal, targeted FGM up to 3.5, on the bundled model."""

    def work() -> None:
        from ..files import make_dir
        from ..threads import in_own_thread

        one_process("demo")
        check_port(port)
        from ..pictures import cache_root

        # a failed start leaves no empty folder
        with removed_on_failure(workspace, cache_root(None)):
            make_dir(workspace, "--workspace")
            cache_dir = picture_cache(None)
            sock = None
            if not no_serve:
                from ..server import bind

                sock = bind("127.0.0.1", port)  # a port in use is reported before any work
            # torch runs in a thread that ends with it, never in the thread that serves
            # (threads.py)
            app_ = in_own_thread(lambda: prepare(cache_dir, sock is not None), "massif-demo")
        if sock is not None:
            from ..server import run as serve_app

            serve_app(app_, "127.0.0.1", port, sock)

    def prepare(cache_dir: Path, serving: bool) -> Any:
        """The default analysis (saved, or run and saved), its pictures, and the app."""
        from ..analysis import run
        from ..store import Workspace

        ws = Workspace(workspace)
        resolved = build_request(benign=DEFAULT_BENIGN, target=DEFAULT_TARGET,
                                 attack="fgm").resolve()
        key = resolved.key
        if ws.has(key):
            graph = ws.load(key)
            typer.echo(f"using the saved analysis in {ws.graph_path(key)}", err=True)
        else:
            graph = run(resolved, progress=TqdmProgress(),
                        resume_dir=ws.folder(key))
            ws.save(graph, key)
        made_pictures(resolved.model, graph, resolved.dataset, "auto", None, cache_dir)
        typer.echo(graph.summary())
        typer.echo(f"\nwrote {ws.graph_path(key)}")
        if not serving:
            return None
        from ..server import create_app

        return create_app(workspace, resolved.model, resolved.dataset)

    run_guarded(work)
