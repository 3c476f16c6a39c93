"""Where a graph's pictures are on disk, for readers (the server, the standalone report).

A neuron's feature visualization is ``pictures/<model fp>/<layer>/<channel>.png`` and its dataset
examples strip ``examples/<model fp>-<dataset fp>/<layer>/<channel>.png``, with the layer's index
``<layer>.json`` beside the layer's folder, under any of several roots (a workspace, then the
cache): the first root that has the file wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ..datasets import Dataset
from ..errors import MassifError, short
from ..schemas import ExamplePatch, ExamplesIndex, Graph, Node
from .examples import class_name

Kind = Literal["picture", "examples"]


def picture_file(roots: Sequence[Path], graph: Graph, node: Node, kind: Kind) -> Path:
    """The first root's file for ``node`` that exists, else the last root's (missing) path."""
    if kind == "picture":
        folder = Path("pictures") / graph.model.fingerprint
    else:
        folder = Path("examples") / f"{graph.model.fingerprint}-{graph.dataset.fingerprint}"
    relative = folder / node.layer / f"{node.channel}.png"
    if relative.is_absolute() or ".." in relative.parts:  # a crafted graph.json's names
        raise MassifError(f"neuron {short(node.id, 60)}: its picture's path would leave the "
                          "picture folders")
    for root in roots:
        if (Path(root) / relative).is_file():
            return Path(root) / relative
    return Path(roots[-1]) / relative


def example_patches(roots: Sequence[Path], graph: Graph, node: Node,
                    dataset: Dataset | None = None) -> list[ExamplePatch] | None:
    """The patches of ``node``'s examples strip, best first, from its layer's index (``None``
    without one). Class names come from the index, else from ``dataset`` when it is the one the
    examples were made from, else they are ``None``."""
    index_path = picture_file(roots, graph, node, "examples").parent.with_suffix(".json")
    try:
        channel = ExamplesIndex.model_validate_json(index_path.read_bytes()).channels[node.channel]
    except (OSError, ValidationError, IndexError):
        return None
    same = dataset is not None and dataset.fingerprint == graph.dataset.fingerprint
    names = channel.classes or [
        class_name(dataset, i) if same and 0 <= i < len(dataset) else None  # type: ignore[arg-type]
        for i in channel.images]
    return [ExamplePatch(image=i, class_name=c, value=v)
            for i, c, v in zip(channel.images, names, channel.values)]
