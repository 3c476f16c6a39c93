"""Pictures for a graph's neurons: feature visualizations and dataset examples, made once.

The ``visualize`` stage (docs/pictures.md) in one call for the pipeline, the CLI and the
server:

1. feature visualizations (``visualize.ensure_pictures``) for the graph's nodes that have none
   yet, cached per model fingerprint and neuron id;
2. dataset examples (``examples.ensure_examples``) for the graph's layers, one streaming pass
   over the dataset for the layers that have none yet, cached per model and dataset.

Both land in a cache folder (``cache_root()``: ``$MASSIF_CACHE``, else ``~/.cache/massif``) that
every analysis of the same model shares; the server also looks in its workspace, so a workspace
copied with its ``pictures/`` and ``examples/`` folders is self-contained.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..datasets import Dataset, cache_dir
from ..distributed import World
from ..models import Model
from ..schemas import Graph

Progress = Callable[[str, int, int], None]
DEFAULT_STEPS = 256
DEFAULT_EXAMPLES = 9


def cache_root(cache: str | Path | None = None) -> Path:
    """``cache`` if given, else the user cache (``$MASSIF_CACHE`` or ``~/.cache/massif``)."""
    return Path(cache) if cache is not None else cache_dir()


def ensure_graph_pictures(model: Model, dataset: Dataset | None, graph: Graph,
                          cache: str | Path | None = None, *, steps: int = DEFAULT_STEPS,
                          k: int = DEFAULT_EXAMPLES, batch_size: int = 256,
                          progress: Progress | None = None, examples_images: int | None = None,
                          world: World | None = None) -> dict[str, dict[str, Path]]:
    """Make whatever pictures ``graph``'s nodes still lack; returns ``{"pictures": {id: path},
    "examples": {id: path}}``. Without a dataset only the feature visualizations are made.
    ``examples_images``: scan at most this many images (a stratified sample) for examples.
    Under torchrun every rank calls this with its ``world``: they share the work and rank 0
    writes (the others get empty dicts)."""
    from .examples import DEFAULT_IMAGES, ensure_examples
    from .visualize import ensure_pictures

    root = cache_root(cache)
    ids = [n.id for n in graph.nodes]
    pictures = ensure_pictures(model, ids, root, steps=steps, progress=progress, world=world)
    examples: dict[str, Path] = {}
    if dataset is not None and k > 0:
        made = ensure_examples(model, dataset, root, layers=list(graph.layers), k=k,
                               batch_size=batch_size, progress=progress,
                               images=examples_images or DEFAULT_IMAGES, world=world)
        examples = {i: made[i] for i in ids if i in made}
    return {"pictures": pictures, "examples": examples}


def make_graph_pictures(model: Model, dataset: Dataset | None, graph: Graph,
                        cache: str | Path | None = None, *, device: object = "auto",
                        batch_size: int | None = None, steps: int = DEFAULT_STEPS,
                        progress: Progress | None = None, examples_images: int | None = None,
                        world: World | None = None) -> dict[str, dict[str, Path]]:
    """``ensure_graph_pictures`` with the model on ``device`` for the work and back where it
    was afterwards (the caller must own the model for that long); ``batch_size=None``: the
    largest batch that fits in memory."""
    from ..devices import resolve_device
    from ..memory import auto_batch_size

    home = model.device
    dev = resolve_device(device)
    model.to(dev)
    try:
        if batch_size is None:
            batch_size = auto_batch_size(
                model.module, (model.channels, model.image_size, model.image_size), 0, dev)
        return ensure_graph_pictures(model, dataset, graph, cache, steps=steps,
                                     batch_size=batch_size, progress=progress,
                                     examples_images=examples_images, world=world)
    finally:
        model.to(home)
