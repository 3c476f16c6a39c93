"""``massif visualize`` and ``massif examples``: pictures of neurons."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..terminal import TqdmProgress, fail, run_guarded
from .app import (
    BATCH_OPTION,
    CACHE_OPTION,
    DATA_OPTION,
    DEVICE_OPTION,
    EXAMPLES_IMAGES_OPTION,
    IMAGE_SIZE_OPTION,
    MODEL_OPTION,
    WEIGHTS_OPTION,
    app,
    neuron_list,
    picture_cache,
    removed_on_failure,
)


@app.command()
def visualize(
    neurons: Optional[str] = typer.Option(None, help="Comma-separated neuron ids "
                                          "(layer:channel, e.g. mixed4a:12)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers: every channel "
                                         "of each, instead of --neurons (default: the model's "
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
        from ..devices import resolve_device
        from ..distributed import local_device, start, stop
        from ..models import load_model
        from ..pictures import cache_root
        from ..pictures.visualize import ensure_pictures

        if not 1 <= steps <= 100_000:
            fail("--steps must be 1 to 100000")
        if neurons and layers:  # --layers would only narrow the model's layers under them
            fail("give --neurons (these neurons) or --layers (every channel of these layers), "
                 "not both")
        dev = resolve_device(device)
        world = start(dev)  # under torchrun the processes share the neurons; rank 0 writes
        try:
            with removed_on_failure(cache_root(cache) if world.main else None):
                root = picture_cache(cache) if world.main else cache_root(cache)
                wanted = layers
                if neurons and not layers:  # the layers the neurons name, in the order given
                    names = [s.strip().rpartition(":")[0] for s in neurons.split(",")
                             if s.strip()]
                    wanted = ",".join(dict.fromkeys(n for n in names if n)) or None
                loaded = load_model(model, weights=weights, image_size=image_size,
                                    layers=wanted)
                ids = neuron_list(loaded, neurons, layers)
                loaded.to(local_device(dev))
                ensure_pictures(loaded, ids, root, steps=steps, world=world,
                                progress=TqdmProgress() if world.main else None)
            if world.main:
                folder = root / "pictures" / loaded.fingerprint
                typer.echo(f"{len(set(ids))} feature visualizations of model {loaded.name} "
                           f"in {folder}")
        finally:
            stop()

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
    examples_images: int = EXAMPLES_IMAGES_OPTION,
    batch_size: Optional[int] = BATCH_OPTION,
    device: str = DEVICE_OPTION,
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Dataset examples: for every neuron of the layers, the images that excite it most,
    cropped to its receptive field around the strongest position (one streaming pass)."""

    def work() -> None:
        from ..datasets import load_dataset
        from ..devices import resolve_device
        from ..distributed import local_device, start, stop
        from ..models import load_model
        from ..pictures import cache_root
        from ..pictures.examples import ensure_examples, examples_dir

        if not 1 <= top <= 1000:
            fail("--top must be 1 to 1000")
        if examples_images < 1:
            fail("--examples-images must be at least 1")
        if batch_size is not None and batch_size < 1:
            fail("--batch-size must be at least 1")
        dev = resolve_device(device)
        world = start(dev)  # under torchrun each process scans its share; rank 0 merges
        try:
            with removed_on_failure(cache_root(cache) if world.main else None):
                root = picture_cache(cache) if world.main else cache_root(cache)
                loaded = load_model(model, weights=weights, image_size=image_size,
                                    layers=layers)
                spec = data or loaded.default_dataset
                if not spec:
                    fail(f"model {loaded.name} has no default dataset; give one with --data")
                dataset = load_dataset(spec, loaded.image_size, loaded.channels)
                loaded.to(local_device(dev))
                batch = batch_size
                if batch is None:
                    from ..memory import auto_batch_size

                    batch = auto_batch_size(
                        loaded.module, (loaded.channels, loaded.image_size, loaded.image_size),
                        0, loaded.device)
                paths = ensure_examples(loaded, dataset, root, k=top, batch_size=batch,
                                        images=examples_images, world=world,
                                        progress=TqdmProgress() if world.main else None)
            if world.main:
                folder = examples_dir(root, loaded.fingerprint, dataset.fingerprint)
                scanned = (f"{len(dataset)} images" if examples_images >= len(dataset) else
                           f"a sample of {examples_images} of its {len(dataset)} images")
                typer.echo(f"dataset examples of {len(paths)} neurons ({dataset.name}, "
                           f"{scanned}) in {folder}")
        finally:
            stop()

    run_guarded(work)
