"""MASSIF: see, neuron by neuron, how an adversarial attack takes over an image classifier.

The public API::

    import massif
    graph = massif.analyze("bundled", benign="Sneaker", target="Sandal", attack="fgm")
    print(graph.summary())
    graph.save("graph.json")

``analyze`` returns a ``Graph`` (the graph JSON contract, ``docs/graph-json.md``); an
``AnalysisRequest`` names one analysis (model, data, classes, attack, strengths, options) for
``analyze`` and ``Editor`` alike; ``load_model`` and ``load_dataset`` give the objects it takes;
``Attack``/``make_attack`` the attacks on their own; ``Editor`` deletes neurons and measures the
attack (``edit`` stage), and ``apply_mask`` rebuilds an edited model it exported. ``show``
opens a graph's page as a standalone report (in Jupyter a ``Graph`` shows it inline);
``compare(a, b)`` compares two graphs (``massif compare``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562), so `massif --help` starts without importing torch.
_EXPORTS = {
    "AnalysisRequest": "request", "Attack": "attacks", "make_attack": "attacks",
    "Graph": "schemas", "Dataset": "datasets", "TensorDataset": "datasets",
    "load_dataset": "datasets", "MassifError": "errors", "Model": "models",
    "load_model": "models", "analyze": "analysis", "Editor": "edit", "apply_mask": "edit",
    "show": "report", "compare": "comparison",
}
__all__ = [
    "AnalysisRequest", "Attack", "Dataset", "Editor", "Graph", "MassifError", "Model",
    "TensorDataset", "analyze", "apply_mask", "compare", "load_dataset", "load_model",
    "make_attack", "show",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massif' has no attribute {name!r}")


def _graph_html(graph: Any) -> str:
    from .report import notebook_html

    return notebook_html(graph)


def _show_graphs_inline() -> None:
    """In Jupyter (IPython running when massif is imported), a ``Graph`` as a cell's value shows
    as the page itself (``report.notebook_html``). IPython's display formatter is told so by the
    class's name, so nothing is imported now, and the graph contract (``schemas``) does not
    depend on the report that draws it."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        html = shell.display_formatter.formatters["text/html"]
        html.for_type_by_name("massif.schemas", "Graph", _graph_html)


_show_graphs_inline()

if TYPE_CHECKING:
    from .analysis import analyze
    from .attacks import Attack, make_attack
    from .comparison import compare
    from .datasets import Dataset, TensorDataset, load_dataset
    from .edit import Editor, apply_mask
    from .errors import MassifError
    from .models import Model, load_model
    from .report import show
    from .request import AnalysisRequest
    from .schemas import Graph
