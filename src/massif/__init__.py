"""MASSIF: see, neuron by neuron, how an adversarial attack takes over an image classifier.

The public API::

    import massif
    graph = massif.analyze("bundled", benign="Sneaker", target="Sandal", attack="fgm")
    print(graph.summary())
    graph.save("graph.json")

``analyze`` returns a ``Graph`` (the graph JSON contract, ``docs/graph-json.md``);
``load_model`` and ``load_dataset`` give the objects it takes; ``Attack``/``make_attack`` the
attacks on their own.
"""

from .attacks import Attack, make_attack
from .contract import Graph
from .datasets import Dataset, TensorDataset, load_dataset
from .errors import MassifError
from .models import Model, load_model
from .pipeline import analyze

__all__ = [
    "Attack", "Dataset", "Graph", "MassifError", "Model", "TensorDataset", "analyze",
    "load_dataset", "load_model", "make_attack",
]
__version__ = "0.1.0"
