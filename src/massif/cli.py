"""The ``massif`` command line. Heavy modules (torch) are imported inside commands, so
``massif --help`` answers at once. Bad input ends with one ``massif: error: ...`` line on stderr
and exit status 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .terminal import Group, TqdmProgress, fail, run_guarded, say

app = typer.Typer(
    cls=Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="MASSIF: see, neuron by neuron, how an adversarial attack takes over a classifier.",
)

DEFAULT_BENIGN = "Sneaker"
DEFAULT_TARGET = "Sandal"


def parse_floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--strengths must be comma-separated numbers, not {text[:60]!r}")
    return None


CACHE_OPTION = typer.Option(None, help="Folder for cached pictures of neurons (default "
                            "$MASSIF_CACHE, else ~/.cache/massif).")


def made_pictures(model: object, graph: object, dataset: object, device: str,
                  batch_size: int, cache: Path | None) -> None:
    """The ``visualize`` stage for a graph's neurons (the dataset the analysis used, already
    loaded), with progress bars; says where they are."""
    from .pictures import cache_root, make_graph_pictures

    make_graph_pictures(model, dataset, graph, cache, device=device, batch_size=batch_size,
                        progress=TqdmProgress())
    typer.echo(f"pictures of the graph's neurons are in {cache_root(cache)}", err=True)


def picture_cache(cache: Path | None, create: bool = True) -> Path:
    """The pictures' cache folder, checked (and, with ``create``, made) before any work."""
    from .io import make_dir, writable_dir
    from .pictures import cache_root

    what = "--cache" if cache is not None else "the cache folder"
    return (make_dir if create else writable_dir)(cache_root(cache), what)


def build_request(**fields: object) -> object:
    """An ``AnalysisRequest`` from the command's options (checked at once)."""
    from .request import AnalysisRequest

    if fields.get("layers") is not None:
        fields["layers"] = [s.strip() for s in str(fields["layers"]).split(",") if s.strip()]
    return AnalysisRequest(**fields)


MODEL_OPTION = typer.Option("bundled", help="bundled, torchvision:NAME or "
                            "path/to/file.py:factory.")
WEIGHTS_OPTION = typer.Option(None, help="State-dict file (for the bundled model too); for "
                              "torchvision models also DEFAULT or none.")
IMAGE_SIZE_OPTION = typer.Option(None, help="Input height = width for your own model.")
DEVICE_OPTION = typer.Option("auto", help="auto, cpu, cuda or cuda:N.")
DATA_OPTION = typer.Option(None, help="fashion-mnist[:train|:test] or an ImageFolder path "
                           "(default: the model's own).")
CLASS_INDEX_OPTION = typer.Option(None, help="ImageNet-style class index JSON, for folders "
                                  "named by WordNet id.")
MAX_IMAGES_OPTION = typer.Option(None, help="Use at most this many images of the benign class "
                                 "(at least 1).")
BATCH_OPTION = typer.Option(256, help="Images per batch.")


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
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = DATA_OPTION,
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, input side "
                                         "first (module names from named_modules())."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    nodes_per_layer: int = typer.Option(8, help="Top N neurons per layer in each graph."),
    edges_per_node: int = typer.Option(4, help="Top E incoming edges per node."),
    importance: str = typer.Option("attribution", help="attribution (gradient x activation)"
                                   " or votes (Summit)."),
    batch_size: int = BATCH_OPTION,
    max_images: Optional[int] = MAX_IMAGES_OPTION,
    device: str = DEVICE_OPTION,
    out: Optional[Path] = typer.Option(None, help="Output folder for graph.json "
                                       "(default runs/<benign>-<target>-<attack>)."),
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Make the feature "
                                  "visualizations and dataset examples the graph's neurons "
                                  "still lack (cached per model)."),
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Analyse an attack on one class: write graph.json and print a summary.

    A killed run resumes where it stopped when started again with the same options."""

    def work() -> None:
        from .analysis import run
        from .io import make_dir, slug, writable_dir
        from .request import resolve_device

        req = build_request(
            benign=benign, target=target, model=model, data=data, weights=weights,
            layers=layers, image_size=image_size, class_index=class_index, attack=attack,
            targeted=not untargeted, max_strength=max_strength, steps=steps,
            strengths=parse_floats(strengths), nodes_per_layer=nodes_per_layer,
            edges_per_node=edges_per_node, importance=importance, max_images=max_images,
            batch_size=batch_size, device=device)
        resolve_device(device)
        default = Path("runs") / f"{slug(benign)[:40]}-{slug(target)[:40]}-{slug(attack)[:20]}"
        folder = writable_dir(out or default, "--out")  # checked now, made once all is known
        cache_dir = picture_cache(cache, create=False) if pictures else None
        say(f"loading model {model} ...")
        resolved = req.resolve()
        make_dir(folder, "--out")
        if cache_dir is not None:
            make_dir(cache_dir, "--cache")
        graph = run(resolved, progress=TqdmProgress(), resume_dir=folder)
        path = graph.save(folder / "graph.json")
        if pictures:
            made_pictures(resolved.model, graph, resolved.dataset, device, batch_size, cache_dir)
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
        from .io import make_dir

        if dest is not None:
            make_dir(dest, "--dest")
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
        from .analysis import run
        from .io import make_dir
        from .store import Workspace

        check_port(port)
        make_dir(workspace, "--workspace")
        cache_dir = picture_cache(None)
        sock = None
        if not no_serve:
            from .server import bind

            sock = bind("127.0.0.1", port)  # a port in use is reported before any work
        ws = Workspace(workspace)
        resolved = build_request(benign=DEFAULT_BENIGN, target=DEFAULT_TARGET,
                                 attack="fgm").resolve()
        key = resolved.key
        if ws.has(key):
            graph = ws.load(key)
            typer.echo(f"using the saved analysis in {ws.graph_path(key)}", err=True)
        else:
            graph = run(resolved, progress=TqdmProgress(),
                        resume_dir=ws.graph_path(key).parent)
            ws.save(graph, key)
        made_pictures(resolved.model, graph, resolved.dataset, "auto", 256, cache_dir)
        typer.echo(graph.summary())
        typer.echo(f"\nwrote {ws.graph_path(key)}")
        if sock is None:
            return
        from .server import create_app
        from .server import run as serve_app

        serve_app(create_app(workspace, resolved.model, resolved.dataset), "127.0.0.1", port,
                  sock)

    run_guarded(work)


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, not {port}")


@app.command()
def visualize(
    neurons: Optional[str] = typer.Option(None, help="Comma-separated neuron ids "
                                          "(layer:channel, e.g. mixed4a:12)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers: every channel "
                                         "of each (default, without --neurons: the model's "
                                         "analysed layers)."),
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    steps: int = typer.Option(256, help="Optimisation steps per picture."),
    device: str = DEVICE_OPTION,
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Feature visualizations: the image each neuron responds to most, one PNG per neuron,
    cached per model (a second request is instant)."""

    def work() -> None:
        from .models import load_model
        from .pictures.visualize import ensure_pictures
        from .request import resolve_device

        if not 1 <= steps <= 100_000:
            fail("--steps must be 1 to 100000")
        dev = resolve_device(device)
        root = picture_cache(cache)
        wanted = layers
        if neurons and not layers:  # the layers the neurons name, in the order given
            names = [s.strip().rpartition(":")[0] for s in neurons.split(",") if s.strip()]
            wanted = ",".join(dict.fromkeys(n for n in names if n)) or None
        loaded = load_model(model, weights=weights, image_size=image_size, layers=wanted)
        ids = neuron_list(loaded, neurons, layers)
        loaded.to(dev)
        ensure_pictures(loaded, ids, root, steps=steps, progress=TqdmProgress())
        folder = root / "pictures" / loaded.fingerprint
        typer.echo(f"{len(set(ids))} feature visualizations of model {loaded.name} in {folder}")

    run_guarded(work)


@app.command()
def examples(
    data: Optional[str] = DATA_OPTION,
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers (default: the "
                                         "model's analysed layers)."),
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    top: int = typer.Option(9, "--top", "-k", help="Example patches per neuron."),
    batch_size: int = BATCH_OPTION,
    device: str = DEVICE_OPTION,
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Dataset examples: for every neuron of the layers, the images that excite it most,
    cropped to its receptive field around the strongest position (one streaming pass)."""

    def work() -> None:
        from .datasets import load_dataset
        from .models import load_model
        from .pictures.examples import ensure_examples, examples_dir
        from .request import resolve_device

        if not 1 <= top <= 1000:
            fail("--top must be 1 to 1000")
        if batch_size < 1:
            fail("--batch-size must be at least 1")
        dev = resolve_device(device)
        root = picture_cache(cache)
        loaded = load_model(model, weights=weights, image_size=image_size, layers=layers)
        spec = data or loaded.default_dataset
        if not spec:
            fail(f"model {loaded.name} has no default dataset; give one with --data")
        dataset = load_dataset(spec, loaded.image_size, loaded.channels)
        loaded.to(dev)
        paths = ensure_examples(loaded, dataset, root, k=top, batch_size=batch_size,
                                progress=TqdmProgress())
        folder = examples_dir(root, loaded.fingerprint, dataset.fingerprint)
        typer.echo(f"dataset examples of {len(paths)} neurons ({dataset.name}, "
                   f"{len(dataset)} images) in {folder}")

    run_guarded(work)


@app.command()
def edit(
    mask: Optional[str] = typer.Option(None, help="Comma-separated neuron ids to delete, e.g. "
                                       "mixed4a:12,mixed4b:3."),
    mode: str = typer.Option("zero", help="zero (the channel's output set to 0) or mean (to "
                             "its mean over the clean benign images)."),
    graph_file: Optional[Path] = typer.Option(None, "--graph", help="A graph.json: its pair, "
                                              "attack and strengths (and, for --defense, its "
                                              "neurons) instead of the options below."),
    defense: Optional[int] = typer.Option(None, help="Suggest a defense: greedily delete up to "
                                          "this many (1 to 64) of the graph's neurons, "
                                          "compared with random and top emphasized ones."),
    export: Optional[Path] = typer.Option(None, help="Write the edited model (state dict + "
                                          "mask list) to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    benign: str = typer.Option(DEFAULT_BENIGN, help="Benign class (name or index)."),
    target: str = typer.Option(DEFAULT_TARGET, help="Target class (name or index)."),
    attack: str = typer.Option("fgm", help="fgm (L2), fgsm (Linf), pgd-l2 or pgd-linf."),
    untargeted: bool = typer.Option(False, "--untargeted", help="Untargeted attack."),
    max_strength: Optional[float] = typer.Option(None, help="Largest strength on [0, 1] "
                                                 "images (default 3.5 for L2, 0.1 for Linf)."),
    steps: int = typer.Option(8, help="Number of strengths, 0 included."),
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = DATA_OPTION,
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, input side "
                                         "first."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    max_images: Optional[int] = MAX_IMAGES_OPTION,
    batch_size: int = BATCH_OPTION,
    device: str = DEVICE_OPTION,
) -> None:
    """Delete neurons and measure the attack: clean accuracy and attack success rate per
    strength before and after, on the stored attack (transfer) and a fresh one (adaptive)."""

    def work() -> None:
        from .analysis import run
        from .edit import Editor
        from .edit.defense import MAX_BUDGET
        from .edit.masks import parse_mask
        from .io import writable_file
        from .request import resolve_device
        from .schemas import Graph

        if not mask and defense is None:
            fail("give --mask (neurons to delete) or --defense N (let MASSIF suggest them)")
        if mode not in ("zero", "mean"):
            fail(f"--mode must be zero or mean, not {mode[:20]!r}")
        if defense is not None and not 1 <= defense <= MAX_BUDGET:
            fail(f"--defense must be 1 to {MAX_BUDGET} (neurons to delete), not {defense}")
        if export is not None:
            writable_file(export, "--export")
        resolve_device(device)
        req = build_request(
            benign=benign, target=target, model=model, data=data, weights=weights,
            layers=layers, image_size=image_size, class_index=class_index, attack=attack,
            targeted=not untargeted, max_strength=max_strength, steps=steps,
            max_images=max_images, batch_size=batch_size, device=device)
        graph = Graph.load(graph_file) if graph_file else None
        ids = [s.strip() for s in (mask or "").split(",") if s.strip()]
        if graph is not None:
            resolved = Editor.graph_request(req, None, graph).resolve()
            Editor.check_graph(resolved, graph)
        else:
            resolved = req.resolve()
        if mask is not None:  # a bad mask is refused before the editor attacks the class
            parse_mask(ids, resolved.model.layer_channels, list(resolved.model.layers))
        if graph is None and defense is not None:
            typer.echo("analysing the pair first (its graph names the candidate neurons) ...",
                       err=True)
            graph = run(resolved, progress=TqdmProgress())
        editor = Editor(resolved, graph=graph)
        answer: dict[str, object] = {}
        if mask is not None:
            result = editor.evaluate(ids, mode=mode)
            answer["edit"] = result.model_dump(mode="json")
            if not as_json:
                typer.echo(result.table())
        if defense is not None:
            suggestion = editor.suggest_defense(defense, graph=graph, mode=mode)
            answer["defense"] = suggestion.model_dump(mode="json")
            if not as_json:
                typer.echo(suggestion.table())
            if not ids:
                if not suggestion.greedy:
                    fail(f"the defense deleted no neuron ({suggestion.stopped})")
                ids = list(suggestion.greedy[-1].mask)
        if as_json:  # one JSON document: the edit, or the defense, or both
            typer.echo(json.dumps(answer if len(answer) > 1 else next(iter(answer.values())),
                                  indent=2))
        if export is not None:
            path = editor.export(ids, export, mode=mode)
            typer.echo(f"wrote the edited model ({len(ids)} neurons deleted) to {path}",
                       err=True)

    run_guarded(work)


def neuron_list(model: object, neurons: str | None, layers: str | None) -> list[str]:
    """Neuron ids from ``--neurons``, else every channel of ``--layers`` (or all layers)."""
    from .pictures.visualize import parse_neuron

    if neurons:
        ids = [s.strip() for s in neurons.split(",") if s.strip()]
        if not ids:
            fail("--neurons is empty")
        for i in ids:
            parse_neuron(model, i)
        return ids
    return [f"{lay}:{c}" for lay in model.layers for c in range(model.layer_channels[lay])]


def main() -> None:
    app()


# --- serve (web page) ---  (see docs/web.md)


@app.command()
def serve(
    workspace: Path = typer.Argument(Path("runs/demo"), help="Workspace folder: saved analyses "
                                     "are served from it, new ones saved in it."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: only this "
                             "machine; anything else is reachable by others and warned "
                             "about: the server has no authentication)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    model: str = typer.Option("bundled", help="Model for new analyses: bundled, "
                              "torchvision:NAME or path/to/file.py:factory."),
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = typer.Option(None, help="Dataset for new analyses (default: the "
                                       "model's own)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, input side "
                                         "first."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    max_images: Optional[int] = typer.Option(None, help="Use at most this many images of "
                                             "the benign class in new analyses."),
    batch_size: int = BATCH_OPTION,
    device: str = DEVICE_OPTION,
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Make feature "
                                  "visualizations and dataset examples for new analyses."),
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Serve the interactive page for a workspace; new pairs are analysed on demand."""

    def work() -> None:
        from .io import make_dir
        from .request import resolve_device
        from .server import bind, create_app, run

        check_port(port)
        req = build_request(benign=0, target=None, model=model, data=data, weights=weights,
                            layers=layers, image_size=image_size, class_index=class_index,
                            max_images=max_images, batch_size=batch_size, device=device)
        resolve_device(device)
        make_dir(workspace, "the workspace")
        picture_cache(cache)
        sock = bind(host, port)  # first, so a port in use is reported at once
        say(f"loading model {model} ...")
        app_ = create_app(workspace, cache=cache, pictures=pictures, request=req)
        run(app_, host, port, sock)

    run_guarded(work)


if __name__ == "__main__":
    main()
