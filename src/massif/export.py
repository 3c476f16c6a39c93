"""The numbers of an analysis as it is viewed, as JSON and CSV tables (docs/web.md, *export ▾*).

The page's *export* menu writes the same format from what it shows (``export.js``); from
Python, ``numbers(graph, k=..., pins=..., masked=...)`` builds it and ``Numbers.write(folder)``
writes ``numbers.json`` and one CSV per table; ``massif report RUN --numbers FOLDER`` does that
for a saved analysis (with its deletion curves when ``massif evaluate`` saved them beside it).

1. ``nodes``: one row per neuron of the graph, its scores and its values at ε_0 = 0 and at the
   strength viewed (ε_k), whether it has flipped by ε_k (suppressed and emphasized neurons;
   ``None`` for shared ones), whether it is pinned and whether it is deleted;
2. ``edges``: each edge's influence on clean images, on images attacked at ε_max, the change,
   and ``shown``: whether the page draws it with ``edges_per_neuron`` k (``shown_edges``: among
   the k heaviest, in the edge view, of its source's outgoing or its target's incoming edges);
3. ``asr``: the attack success rate at each strength (and the divergence layer there);
4. ``deletion`` (the page: the numbers of the neurons deleted, ``EditResult``), ``defense``
   (``DefenseResult``) and ``curves`` (``Curves``, ``massif evaluate``) as they are, and their
   tables (``deletion.csv``, ``defense.csv``, ``curves.csv``) where they exist.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .schemas import Graph, Strict

# the tables' columns, in order (the page's export.js writes the same)
NODE_COLUMNS = ("id", "layer", "channel", "group", "vulnerability", "flip_strength", "flipped",
                "activation_clean", "activation", "importance_benign_clean", "importance_benign",
                "importance_target_clean", "importance_target", "pinned", "deleted")
EDGE_COLUMNS = ("source", "target", "influence_benign", "influence_attacked", "change", "shown")
ASR_COLUMNS = ("k", "epsilon", "attack_success_rate", "divergence_layer")
DELETION_COLUMNS = ("measure", "k", "epsilon", "before", "after")
DEFENSE_COLUMNS = ("curve", "size", "adaptive_asr", "clean_accuracy", "clean_accuracy_benign",
                   "mask")
CURVE_COLUMNS = ("ranking", "k", "asr", "asr_std", "clean_accuracy", "target_accuracy", "margin",
                 "adaptive_asr")


class View(Strict):
    """What the numbers were taken at: the strength and the page's selections."""

    strength_index: int
    epsilon: float
    pins: list[str] = Field(default_factory=list)
    masked: list[str] = Field(default_factory=list)
    mask_mode: Literal["zero", "mean"] = "zero"
    edge_mode: Literal["benign", "attacked", "change"] = "attacked"
    highlight: str = "none"
    edges_per_neuron: int | None = Field(default=2, ge=1)  # None: all edges drawn


class Numbers(Strict):
    """``numbers.json``: one analysis's numbers at one view (the module's docstring)."""

    format: Literal["massif-numbers"] = "massif-numbers"
    version: Literal[1] = 1
    key: str | None
    model: str
    dataset: str
    benign: str
    target: str
    attack: str
    targeted: bool
    strengths: list[float]
    clean_accuracy: float
    view: View
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    asr: list[dict[str, Any]]
    deletion: dict[str, Any] | None = None
    defense: dict[str, Any] | None = None
    curves: dict[str, Any] | None = None

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Each table's rows, by CSV file name; deletion, defense and curves only where present."""
        out = {"nodes.csv": self.nodes, "edges.csv": self.edges, "asr.csv": self.asr}
        if self.deletion is not None:
            out["deletion.csv"] = deletion_rows(self.deletion)
        if self.defense is not None:
            out["defense.csv"] = defense_rows(self.defense)
        if self.curves is not None:
            out["curves.csv"] = curve_rows(self.curves)
        return out

    def csv(self) -> dict[str, str]:
        """Each table as CSV text, by file name."""
        columns = {"nodes.csv": NODE_COLUMNS, "edges.csv": EDGE_COLUMNS, "asr.csv": ASR_COLUMNS,
                   "deletion.csv": DELETION_COLUMNS, "defense.csv": DEFENSE_COLUMNS,
                   "curves.csv": CURVE_COLUMNS}
        return {name: to_csv(rows, columns[name]) for name, rows in self.tables().items()}

    def write(self, folder: str | Path) -> list[Path]:
        """Write ``numbers.json`` and the CSV tables into ``folder``; their paths."""
        from .files import as_path, make_dir, write_atomic

        where = make_dir(as_path(folder, "--numbers"), "--numbers")
        files = {"numbers.json": self.model_dump_json(indent=2), **self.csv()}
        return [write_atomic(where / name, text) for name, text in files.items()]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # as JavaScript writes it: 3, not 3.0
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header line (``\\n`` line ends; empty cells for ``None``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def divergence_at(graph: Graph, k: int) -> str | None:
    """The divergence layer at strength index ``k`` (as the page's ``divergenceAt``): the first
    layer by which half of the attacked images that cross have crossed; None when none does."""
    d = graph.metrics.divergence
    if d is None or k >= len(d.crossed) or not d.crossed[k] or not d.crossed[k][-1] > 0:
        return None
    row = d.crossed[k]
    return graph.layers[next(i for i, f in enumerate(row) if f >= 0.5 * row[-1])]


def _flipped(node: Any, eps: float) -> bool | None:
    if node.group == "shared":
        return None
    return node.flip_strength is not None and node.flip_strength <= eps + 1e-9


def _edge_weight(edge: Any, edge_mode: str) -> float:
    """An edge's weight in an edge view, what its width shows on the page."""
    if edge_mode == "benign":
        return max(0.0, edge.influence_benign)
    if edge_mode == "attacked":
        return max(0.0, edge.influence_attacked)
    return abs(edge.influence_attacked - edge.influence_benign)


def shown_edges(graph: Graph, edge_mode: str = "attacked",
                edges_per_neuron: int | None = 2) -> list[bool]:
    """Whether the page draws each of ``graph.edges`` (in order) with ``edges_per_neuron`` k
    (None: all): an edge of positive weight in ``edge_mode`` that fewer than k of its source's
    outgoing edges, or fewer than k of its target's incoming edges, outweigh (ties at the k-th
    place are all drawn). The page's ``edgetop.js`` follows the same rule."""
    if edges_per_neuron is None:
        return [True] * len(graph.edges)
    weights = [_edge_weight(e, edge_mode) for e in graph.edges]
    outgoing: dict[str, list[float]] = {}
    incoming: dict[str, list[float]] = {}
    for e, w in zip(graph.edges, weights):
        outgoing.setdefault(e.source, []).append(w)
        incoming.setdefault(e.target, []).append(w)

    def among_top(w: float, others: list[float]) -> bool:
        return sum(v > w for v in others) < edges_per_neuron

    return [w > 0 and (among_top(w, outgoing[e.source]) or among_top(w, incoming[e.target]))
            for e, w in zip(graph.edges, weights)]


def numbers(graph: Graph, *, key: str | None = None, k: int | None = None,
            pins: Sequence[str] = (), masked: Sequence[str] = (), mask_mode: str = "zero",
            edge_mode: str = "attacked", highlight: str = "none",
            edges_per_neuron: int | None = 2,
            deletion: Any = None, defense: Any = None, curves: Any = None) -> Numbers:
    """The numbers of ``graph`` viewed at strength index ``k`` (default the largest), with
    ``pins`` and ``masked`` marked and each edge ``shown`` or not with ``edges_per_neuron``
    (the page's default 2; None: all); ``deletion``, ``defense``, ``curves``: an
    ``EditResult``, ``DefenseResult`` or ``Curves`` (or their dicts) to include."""
    from .attacks import attack_label
    from .errors import MassifError

    strengths = graph.attack.strengths
    k = len(strengths) - 1 if k is None else k
    if not 0 <= k < len(strengths):
        raise MassifError(f"k={k} is not a strength index of this analysis (0 to "
                          f"{len(strengths) - 1})")
    ids = {n.id for n in graph.nodes}
    for what, chosen in (("pinned", pins), ("deleted", masked)):
        unknown = [i for i in chosen if i not in ids]
        if unknown:
            raise MassifError(f"the {what} neuron {unknown[0][:60]} is not in this analysis")
    eps = strengths[k]
    pinned, deleted = set(pins), set(masked)
    nodes = [{
        "id": n.id, "layer": n.layer, "channel": n.channel, "group": n.group,
        "vulnerability": n.vulnerability, "flip_strength": n.flip_strength,
        "flipped": _flipped(n, eps),
        "activation_clean": n.activation[0], "activation": n.activation[k],
        "importance_benign_clean": n.importance_benign[0],
        "importance_benign": n.importance_benign[k],
        "importance_target_clean": n.importance_target[0],
        "importance_target": n.importance_target[k],
        "pinned": n.id in pinned, "deleted": n.id in deleted,
    } for n in graph.nodes]
    if edges_per_neuron is not None and edges_per_neuron < 1:
        raise MassifError(f"edges_per_neuron={edges_per_neuron} is not a count of edges (1, 2, "
                          "…, or None for all)")
    shown = shown_edges(graph, edge_mode, edges_per_neuron)
    edges = [{"source": e.source, "target": e.target, "influence_benign": e.influence_benign,
              "influence_attacked": e.influence_attacked,
              "change": e.influence_attacked - e.influence_benign, "shown": drawn}
             for e, drawn in zip(graph.edges, shown)]
    asr = [{"k": i, "epsilon": s, "attack_success_rate": graph.metrics.attack_success_rate[i],
            "divergence_layer": divergence_at(graph, i)} for i, s in enumerate(strengths)]
    dump = lambda x: x.model_dump(mode="json") if hasattr(x, "model_dump") else x  # noqa: E731
    return Numbers(
        key=key, model=graph.model.name, dataset=graph.dataset.name, benign=graph.benign.name,
        target=graph.target.name, attack=attack_label(graph.attack), targeted=graph.attack.targeted,
        strengths=list(strengths), clean_accuracy=graph.metrics.clean_accuracy,
        view=View(strength_index=k, epsilon=eps, pins=list(pins), masked=list(masked),
                  mask_mode=mask_mode, edge_mode=edge_mode, highlight=highlight,
                  edges_per_neuron=edges_per_neuron),
        nodes=nodes, edges=edges, asr=asr, deletion=dump(deletion), defense=dump(defense),
        curves=dump(curves))


def deletion_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """An ``EditResult``'s numbers, one row per measure (and strength for the ASRs)."""
    rows = [{"measure": m, "before": d[m]["before"], "after": d[m]["after"]}
            for m in ("clean_accuracy_benign", "clean_accuracy_all")]
    for m in ("transfer_asr", "adaptive_asr"):
        if d.get(m) is None:
            continue
        rows += [{"measure": m, "k": i, "epsilon": eps, "before": d[m]["before"][i],
                  "after": d[m]["after"][i]} for i, eps in enumerate(d["strengths"])]
    return rows


def defense_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``DefenseResult``'s points: the unedited model, then each curve's, in order."""
    keys = ("size", "adaptive_asr", "clean_accuracy", "clean_accuracy_benign", "mask")
    point = lambda curve, p: {"curve": curve, **{c: p.get(c) for c in keys}}  # noqa: E731
    rows = [point("unedited", d["before"])]
    for curve, name in (("greedy", "greedy"), ("top emphasized", "top_emphasized"),
                        ("random", "random")):
        rows += [point(curve, p) for p in d.get(name) or []]
    return rows


def curve_rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    """``Curves``' points, one row per ranking and size."""
    return [{"ranking": curve["ranking"], **{col: p.get(col) for col in CURVE_COLUMNS[1:]}}
            for curve in c["curves"] for p in curve["points"]]


def write_numbers(run: str | Path, folder: str | Path, *, k: int | None = None) -> list[Path]:
    """Write the numbers of the analysis at ``run`` (a ``graph.json`` or the folder holding it)
    at strength index ``k`` (default the largest) into ``folder``, with its deletion curves when
    ``curves.json`` lies beside it (``massif evaluate --out`` the same folder); the paths."""
    from .edit.curves import Curves
    from .errors import MassifError
    from .report import find_run

    graph, path, key = find_run(run)
    curves = None
    saved = path.parent / "curves.json"
    if saved.is_file():
        try:
            curves = Curves.model_validate_json(saved.read_bytes())
        except ValueError:
            raise MassifError(f"{saved.name} beside the analysis cannot be read; run massif "
                              "evaluate again or move it away") from None
    return numbers(graph, key=key, k=k, curves=curves).write(folder)
