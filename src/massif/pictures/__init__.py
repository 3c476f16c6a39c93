"""Pictures of neurons: feature visualizations (``visualize``) and dataset examples
(``examples``), made once per model (and dataset) and cached; ``graph_pictures`` makes what a
graph's neurons still lack."""

from .graph_pictures import (
    DEFAULT_EXAMPLES,
    DEFAULT_STEPS,
    cache_root,
    ensure_graph_pictures,
    make_graph_pictures,
)

__all__ = ["DEFAULT_EXAMPLES", "DEFAULT_STEPS", "cache_root", "ensure_graph_pictures",
           "make_graph_pictures"]
