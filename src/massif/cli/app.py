"""The command group, its shared options and helpers (the commands are in the sibling modules)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..attacks import attack_names, strengths_text
from ..attacks import help_text as attack_help
from ..terminal import Group, TqdmProgress, fail

if TYPE_CHECKING:
    from ..distributed import World

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
                            "$MASSIF_CACHE, else $XDG_CACHE_HOME/massif, else "
                            "~/.cache/massif).")


def made_pictures(model: object, graph: object, dataset: object, device: str,
                  batch_size: int | None, cache: Path | None,
                  examples_images: int | None = None, world: World | None = None) -> None:
    """The ``visualize`` stage for a graph's neurons (the dataset the analysis used, already
    loaded), with progress bars; says where they are. Under torchrun every rank calls it."""
    from ..devices import resolve_device
    from ..distributed import World, local_device
    from ..pictures import cache_root, make_graph_pictures

    world = world or World()
    main = world.main
    make_graph_pictures(model, dataset, graph, cache, device=local_device(resolve_device(device)),
                        batch_size=batch_size, progress=TqdmProgress() if main else None,
                        examples_images=examples_images, world=world)
    if main:
        typer.echo(f"pictures of the graph's neurons are in {cache_root(cache)}", err=True)


EXAMPLES_IMAGES_OPTION = typer.Option(
    50_000, help="Dataset examples: scan at most this many images (a seeded sample with every "
    "class in equal share, when the dataset is larger).")


def picture_cache(cache: Path | None, create: bool = True) -> Path:
    """The pictures' cache folder, checked (and, with ``create``, made) before any work."""
    from ..files import make_dir, writable_dir
    from ..pictures import cache_root

    what = "--cache" if cache is not None else "the cache folder"
    return (make_dir if create else writable_dir)(cache_root(cache), what)


@contextmanager
def removed_on_failure(*folders: Path | None) -> Iterator[None]:
    """Run the block; when it fails (an error, a full disk, Ctrl+C), remove those of
    ``folders`` that it made, and the parents it made for them, while they are still empty:
    a failed command leaves no empty folder behind (one holding anything stays)."""
    from ..download import missing_folders, remove_empty

    made = [missing_folders(Path(f)) for f in folders if f is not None]  # innermost first
    try:
        yield
    except BaseException:
        for missing in made:
            remove_empty(missing)
        raise


def build_request(**fields: object) -> object:
    """An ``AnalysisRequest`` from the command's options (checked at once)."""
    from ..request import AnalysisRequest

    if fields.get("layers") is not None:
        fields["layers"] = str(fields["layers"]).split(",")  # load_model refuses empty names
    return AnalysisRequest(**fields)


MODEL_OPTION = typer.Option("bundled", help="bundled, bundled-robust (the same net "
                            "adversarially trained), bundled-vit (a small vision transformer), "
                            "torchvision:NAME, timm:NAME, "
                            "hf:FOLDER_OR_NAME (Hugging Face) or path/to/file.py:factory.")
WEIGHTS_OPTION = typer.Option(None, help="State-dict file (for the bundled model too); for "
                              "torchvision, timm and hf models also DEFAULT (the library's "
                              "own, cached) or none (random, seeded).")
IMAGE_SIZE_OPTION = typer.Option(None, help="Input height = width for your own model.")
DEVICE_OPTION = typer.Option("auto", help="auto, cpu, cuda or cuda:N.")
DATA_OPTION = typer.Option(None, help="fashion-mnist[:train|:test] or an ImageFolder path "
                           "(default: the model's own).")
CLASS_INDEX_OPTION = typer.Option(None, help="ImageNet-style class index JSON, for folders "
                                  "named by WordNet id.")
MAX_IMAGES_OPTION = typer.Option(None, help="Use at most this many images of the benign class "
                                 "(at least 1).")
BATCH_OPTION = typer.Option(None, help="Images per batch (default: the largest that fits "
                            "in memory, see docs/scale.md).")
WORKERS_OPTION = typer.Option(0, help="Processes that load and decode images while the model "
                              "computes (0: a background thread for image folders; data "
                              "already in memory needs none).")
BENIGN_OPTION = typer.Option(DEFAULT_BENIGN, help="Benign class (name or index).")
TARGET_OPTION = typer.Option(DEFAULT_TARGET, help="Target class (name or index).")
ATTACK_OPTION = typer.Option(attack_names()[0], help=f"The attack: {attack_help()}")
MAX_STRENGTH_OPTION = typer.Option(None, help="Largest strength on [0, 1] images (default: "
                                   f"{strengths_text()}).")


def one_process(command: str) -> None:
    """Refuse to run ``command`` under torchrun: it serves or edits in one process."""
    from ..distributed import launched

    if launched():
        fail(f"massif {command} runs in one process; start it without torchrun (analyze, "
             "visualize and examples share their work among processes)")


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, not {port}")


def neuron_list(model: object, neurons: str | None, layers: str | None) -> list[str]:
    """Neuron ids from ``--neurons``, else every channel of ``--layers`` (or all layers)."""
    from ..pictures.visualize import parse_neuron

    if neurons:
        ids = [s.strip() for s in neurons.split(",") if s.strip()]
        if not ids:
            fail("--neurons is empty")
        for i in ids:
            parse_neuron(model, i)
        return ids
    return [f"{lay}:{c}" for lay in model.layers for c in range(model.layer_channels[lay])]
