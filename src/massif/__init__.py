"""MASSIF: see, neuron by neuron, how an adversarial attack takes over an image classifier.

The public API::

    import massif
    graph = massif.analyze("bundled", benign="Sneaker", target="Sandal", attack="fgm")
    print(graph.summary())
    graph.save("graph.json")

``analyze`` returns a ``Graph`` (the graph JSON contract, ``docs/graph-json.md``);
``load_model`` and ``load_dataset`` give the objects it takes; ``Attack``/``make_attack`` the
attacks on their own; ``Editor`` deletes neurons and measures the attack (``edit`` stage), and
``apply_mask`` rebuilds an edited model it exported.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562), so `massif --help` starts without importing torch.
_EXPORTS = {
    "Attack": "attacks", "make_attack": "attacks", "Graph": "contract", "Dataset": "datasets",
    "TensorDataset": "datasets", "load_dataset": "datasets", "MassifError": "errors",
    "Model": "models", "load_model": "models", "analyze": "pipeline", "Editor": "edit",
    "apply_mask": "masks",
}
__all__ = [
    "Attack", "Dataset", "Editor", "Graph", "MassifError", "Model", "TensorDataset", "analyze",
    "apply_mask", "load_dataset", "load_model", "make_attack",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massif' has no attribute {name!r}")


if TYPE_CHECKING:
    from .attacks import Attack, make_attack
    from .contract import Graph
    from .datasets import Dataset, TensorDataset, load_dataset
    from .edit import Editor
    from .errors import MassifError
    from .masks import apply_mask
    from .models import Model, load_model
    from .pipeline import analyze
