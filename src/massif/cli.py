"""The ``massif`` command line. Heavy modules (torch) are imported inside commands, so
``massif --help`` answers at once. Bad input ends with one ``massif: error: ...`` line on stderr
and exit status 2, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="MASSIF: see, neuron by neuron, how an adversarial attack takes over a classifier.",
)

DEFAULT_BENIGN = "Sneaker"
DEFAULT_TARGET = "Sandal"


_OPEN_BARS: list = []  # progress bars to close (ending their line) before an error message


def fail(message: str) -> None:
    while _OPEN_BARS:
        _OPEN_BARS.pop().close()
    typer.echo(f"massif: error: {message}", err=True)
    raise typer.Exit(2)


def run_guarded(fn: Callable[[], object]) -> object:
    """Run ``fn``; a ``MassifError`` becomes one line on stderr and exit status 2."""
    from .errors import MassifError

    try:
        return fn()
    except MassifError as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo("massif: interrupted", err=True)
        raise typer.Exit(130) from None


class TqdmProgress:
    """``progress(stage, done, total)`` drawn as one tqdm bar per stage on stderr."""

    LABELS = {"profile": "profile neurons (all strengths)", "edges": "influence + faithfulness"}

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=self.LABELS.get(stage, stage), unit="img",
                       file=sys.stderr, leave=True, dynamic_ncols=True)
            self.bars[stage] = bar
            _OPEN_BARS.append(bar)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            if bar in _OPEN_BARS:
                _OPEN_BARS.remove(bar)


def parse_floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--strengths must be comma-separated numbers, not {text!r}")
    return None


@app.command()
def analyze(
    benign: str = typer.Option(DEFAULT_BENIGN, help="Benign class (name or index)."),
    target: str = typer.Option(DEFAULT_TARGET, help="Target class (name or index)."),
    attack: str = typer.Option("fgm", help="fgm (L2), fgsm (Linf), pgd-l2 or pgd-linf."),
    untargeted: bool = typer.Option(False, "--untargeted", help="Untargeted attack: success "
                                    "is any wrong class; the attacked graph is still measured "
                                    "toward --target."),
    max_strength: Optional[float] = typer.Option(None, help="Largest strength on [0, 1] "
                                                 "images (default 3.5 for L2, 0.1 for Linf)."),
    steps: int = typer.Option(8, help="Number of strengths, evenly spaced from 0 to the "
                              "maximum, 0 included."),
    strengths: Optional[str] = typer.Option(None, help="Explicit increasing strengths, e.g. "
                                            "0,0.5,1,2 (overrides --max-strength/--steps)."),
    model: str = typer.Option("bundled", help="bundled, torchvision:NAME or "
                              "path/to/file.py:factory."),
    weights: Optional[str] = typer.Option(None, help="State-dict file; for torchvision "
                                          "models also DEFAULT or none."),
    data: Optional[str] = typer.Option(None, help="fashion-mnist[:train|:test] or an "
                                       "ImageFolder path (default: the model's own)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, input side "
                                         "first (module names from named_modules())."),
    image_size: Optional[int] = typer.Option(None, help="Input height = width for your "
                                             "own model."),
    class_index: Optional[str] = typer.Option(None, help="ImageNet-style class index JSON, "
                                              "for folders named by WordNet id."),
    nodes_per_layer: int = typer.Option(8, help="Top N neurons per layer in each graph."),
    edges_per_node: int = typer.Option(4, help="Top E incoming edges per node."),
    importance: str = typer.Option("attribution", help="attribution (gradient x activation)"
                                   " or votes (Summit)."),
    batch_size: int = typer.Option(256, help="Images per batch."),
    max_images: Optional[int] = typer.Option(None, help="Use at most this many images of "
                                             "the benign class."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    out: Optional[Path] = typer.Option(None, help="Output folder for graph.json "
                                       "(default runs/<benign>-<target>-<attack>)."),
) -> None:
    """Analyse an attack on one class: write graph.json and print a summary.

    A killed run resumes where it stopped when started again with the same options."""

    def work() -> None:
        from . import pipeline
        from .models import load_model
        from .store import _slug

        typer.echo(f"loading model {model} ...", err=True)
        loaded = load_model(model, weights=weights, layers=layers, image_size=image_size)
        folder = Path(out or Path("runs") / f"{_slug(benign)}-{_slug(target)}-{attack}")
        graph = pipeline.analyze(
            loaded, data, benign=benign, target=target, attack=attack,
            targeted=not untargeted, max_strength=max_strength, steps=steps,
            strengths=parse_floats(strengths), nodes_per_layer=nodes_per_layer,
            edges_per_node=edges_per_node, importance=importance, batch_size=batch_size,
            device=device, max_images=max_images, class_index=class_index,
            progress=TqdmProgress(), resume_dir=folder,
        )
        path = graph.save(folder / "graph.json")
        typer.echo(graph.summary())
        typer.echo(f"\nwrote {path}")

    run_guarded(work)


@app.command("download-data")
def download_data(
    dest: Optional[Path] = typer.Option(None, help="Folder (default ~/.cache/massif/"
                                        "fashion-mnist)."),
    url: Optional[str] = typer.Option(None, help="Mirror to download from."),
) -> None:
    """Download Fashion-MNIST from its official source (only needed without Debian's
    dataset-fashion-mnist package)."""

    def work() -> None:
        from .datasets import download_fashion_mnist

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
        from . import pipeline
        from .datasets import load_dataset
        from .models import load_model
        from .store import Workspace

        sock = None
        if not no_serve:
            from .serve import bind

            sock = bind("127.0.0.1", port)  # a port in use is reported before any work
        ws = Workspace(workspace)
        model = load_model("bundled")
        dataset = load_dataset(model.default_dataset, model.image_size, model.channels)
        request = dict(benign=DEFAULT_BENIGN, target=DEFAULT_TARGET, attack="fgm")
        key = pipeline.request_key(model, dataset, **request)
        if ws.has(key):
            graph = ws.load(key)
            typer.echo(f"using the saved analysis in {ws.graph_path(key)}", err=True)
        else:
            graph = pipeline.analyze(model, dataset, progress=TqdmProgress(),
                                     resume_dir=ws.graph_path(key).parent, **request)
            ws.save(graph, key)
        typer.echo(graph.summary())
        typer.echo(f"\nwrote {ws.graph_path(key)}")
        if sock is None:
            return
        from .serve import create_app, run

        run(create_app(workspace, model, dataset), "127.0.0.1", port, sock)

    run_guarded(work)


def main() -> None:
    app()



# --- serve (web page) ---  (owned by the web page; see docs/web.md)


@app.command()
def serve(
    workspace: Path = typer.Argument(Path("runs/demo"), help="Workspace folder: saved analyses "
                                     "are served from it, new ones saved in it."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: only this "
                             "machine)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    model: str = typer.Option("bundled", help="Model for new analyses: bundled, "
                              "torchvision:NAME or path/to/file.py:factory."),
    weights: Optional[str] = typer.Option(None, help="State-dict file; for torchvision "
                                          "models also DEFAULT or none."),
    data: Optional[str] = typer.Option(None, help="Dataset for new analyses (default: the "
                                       "model's own)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, input side "
                                         "first."),
    image_size: Optional[int] = typer.Option(None, help="Input height = width for your "
                                             "own model."),
    class_index: Optional[str] = typer.Option(None, help="ImageNet-style class index JSON."),
    max_images: Optional[int] = typer.Option(None, help="Use at most this many images of "
                                             "the benign class in new analyses."),
    batch_size: int = typer.Option(256, help="Images per batch."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Serve the interactive page for a workspace; new pairs are analysed on demand."""

    def work() -> None:
        from .models import load_model
        from .serve import bind, create_app, run

        if not 0 <= port <= 65535:
            fail(f"--port must be between 0 and 65535, not {port}")
        sock = bind(host, port)  # first, so a port in use is reported at once
        typer.echo(f"loading model {model} ...", err=True)
        loaded = load_model(model, weights=weights, layers=layers, image_size=image_size)
        app_ = create_app(workspace, loaded, data, device=device, max_images=max_images,
                          batch_size=batch_size, class_index=class_index)
        run(app_, host, port, sock)

    run_guarded(work)


if __name__ == "__main__":
    main()
