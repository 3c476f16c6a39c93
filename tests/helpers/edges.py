"""A graph whose edges' weights are set by hand, so that which edges "edges per neuron" draws is
known exactly (tests/unit/test_edge_top.py, tests/browser/test_edges_topk.py), and the rule
written out a second way, for graphs whose answer is not worked out by hand."""

from __future__ import annotations

from massif.schemas import Edge, Graph
from tests.helpers.synthetic import synthetic_graph

# (source, target): (influence_benign, influence_attacked); sources A–D in the first layer,
# targets W–Z in the second. D→Z weighs nothing in the attacked view (its influence is < 0);
# C→Y and D→Y tie there as Y's heaviest incoming edges, and neither is its source's heaviest.
HAND_EDGES = {
    ("A", "W"): (0.1, 0.9), ("A", "X"): (0.7, 0.5), ("A", "Y"): (0.2, 0.3),
    ("B", "W"): (0.3, 0.8), ("B", "X"): (0.6, 0.6),
    ("C", "X"): (0.05, 0.4), ("C", "Y"): (0.9, 0.35), ("C", "Z"): (0.4, 0.1),
    ("D", "W"): (0.15, 0.5), ("D", "Y"): (0.5, 0.35), ("D", "Z"): (0.3, -0.2),
}
# Worked out by hand: each neuron's strongest outgoing edge and each one's strongest incoming.
HAND_TOP1 = {
    # attacked: out A→W, B→W, C→X, D→W; in W A→W, X B→X, Y C→Y and D→Y (tied), Z C→Z (D→Z
    # weighs 0)
    "attacked": {("A", "W"), ("B", "W"), ("C", "X"), ("D", "W"), ("B", "X"), ("C", "Y"),
                 ("D", "Y"), ("C", "Z")},
    # benign: out A→X, B→X, C→Y, D→Y; in W B→W, X A→X, Y C→Y, Z C→Z
    "benign": {("A", "X"), ("B", "X"), ("C", "Y"), ("D", "Y"), ("B", "W"), ("C", "Z")},
}
# attacked, two per neuron: every edge but D→Z and A→Y (A's third, and Y's third after the tie)
HAND_TOP2_ATTACKED = set(HAND_EDGES) - {("D", "Z"), ("A", "Y")}


def hand_graph() -> tuple[Graph, dict[str, str]]:
    """The hand-set graph (two layers of four neurons) and the ids of A–D and W–Z in it."""
    base = synthetic_graph(layers=2, per_layer=4, seed=11)
    first = [n.id for n in base.nodes if n.layer == base.layers[0]]
    second = [n.id for n in base.nodes if n.layer == base.layers[1]]
    names = dict(zip("ABCD", first)) | dict(zip("WXYZ", second))
    edges = [Edge(source=names[s], target=names[t], influence_benign=b, influence_attacked=a)
             for (s, t), (b, a) in HAND_EDGES.items()]
    return base.model_copy(update={"edges": edges}), names


def ids(pairs: set[tuple[str, str]], names: dict[str, str]) -> set[str]:
    """Letter pairs as the page's edge ids, "source>target"."""
    return {f"{names[s]}>{names[t]}" for s, t in pairs}


def weight(edge: Edge, mode: str) -> float:
    if mode == "benign":
        return max(0.0, edge.influence_benign)
    if mode == "attacked":
        return max(0.0, edge.influence_attacked)
    return abs(edge.influence_attacked - edge.influence_benign)


def expected_shown(graph: Graph, mode: str, k: int | None) -> set[str]:
    """The edges drawn with k per neuron (None: all), by docs/web.md's rule written with
    thresholds: an edge of positive weight at least the k-th largest weight among its source's
    outgoing edges or among its target's incoming edges."""
    if k is None:
        return {f"{e.source}>{e.target}" for e in graph.edges}
    out: dict[str, list[float]] = {}
    into: dict[str, list[float]] = {}
    for e in graph.edges:
        out.setdefault(e.source, []).append(weight(e, mode))
        into.setdefault(e.target, []).append(weight(e, mode))

    def kth(weights: list[float]) -> float:
        ranked = sorted(weights, reverse=True)
        return ranked[k - 1] if len(ranked) >= k else float("-inf")

    return {f"{e.source}>{e.target}" for e in graph.edges
            if weight(e, mode) > 0 and (weight(e, mode) >= kth(out[e.source]) or
                                        weight(e, mode) >= kth(into[e.target]))}
