"""Compare two analyses: two strengths of one analysis, two attacks, two models on one pair.

``compare(a, b)`` gives a ``Comparison``: each side's attack success, divergence and
crossed shares at the strength compared, and, when both come from the same model (the same
weights' fingerprint), every neuron of either graph with what it is in each: ``shared``, or
``suppressed`` / ``emphasized`` once it has flipped at that strength, else nothing. Neurons of
different models are different units, so then only the attacks and divergences are compared.
``massif compare A B`` prints ``comparison_text``; the server answers ``/compare.json`` and the
page ``/compare`` draws it.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import MassifError
from .schemas import Graph, Group, ModelRef, Node, divergence_layer


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompareSide(_Model):
    """One analysis of a comparison, at the strength it is compared at."""

    key: str = Field(description="its workspace key (or its folder's name)")
    label: str
    model: ModelRef
    strength: float
    strength_index: int
    clean_accuracy: float
    asr: float = Field(description="attack success rate at this strength")
    attack_success_rate: list[float]
    strengths: list[float]
    divergence_layer: str | None = Field(description="at this strength")
    crossed: list[float] | None = Field(description="per layer, at this strength")
    layers: list[str]


class ComparedNeuron(_Model):
    """A neuron in either graph and what it is in each at its strength: ``shared``, or
    ``suppressed`` / ``emphasized`` once flipped (``flip_strength ≤ ε``), else ``None``."""

    id: str
    layer: str
    a: Group | None
    b: Group | None
    vulnerability_a: float | None = None
    vulnerability_b: float | None = None


class Comparison(_Model):
    """Two analyses compared neuron by neuron (``comparison.compare``). ``neurons`` is empty when
    the models differ (their channels are different units)."""

    a: CompareSide
    b: CompareSide
    same_model: bool
    layers: list[str]
    neurons: list[ComparedNeuron]


EPS = 1e-9
GROUPS = ("emphasized", "suppressed")


def strength_index(graph: Graph, strength: float | None) -> int:
    """The index of the largest strength of ``graph`` at most ``strength`` (default: ε_max)."""
    values = graph.attack.strengths
    if strength is None:
        return len(values) - 1
    if not math.isfinite(strength) or strength < -EPS or strength > values[-1] + EPS:
        raise MassifError(f"strength {strength:g} is outside this analysis's 0 to "
                          f"{values[-1]:g}")
    return max(k for k, v in enumerate(values) if v <= strength + EPS)


def state(node: Node, eps: float) -> Group | None:
    """What ``node`` is at strength ``eps``: shared, its group once flipped, else ``None``."""
    if node.group == "shared":
        return "shared"
    flipped = node.flip_strength is not None and node.flip_strength <= eps + EPS
    return node.group if flipped else None


def _side(graph: Graph, key: str, k: int) -> CompareSide:
    eps = graph.attack.strengths[k]
    div = graph.metrics.divergence
    kind = "targeted" if graph.attack.targeted else "untargeted"
    label = (f"{graph.benign.name} → {graph.target.name}, {kind} {graph.attack.name.upper()} "
             f"({graph.attack.norm}) at ε = {eps:g}, model {graph.model.name}")
    return CompareSide(
        key=key, label=label, model=graph.model, strength=eps, strength_index=k,
        clean_accuracy=graph.metrics.clean_accuracy,
        asr=graph.metrics.attack_success_rate[k],
        attack_success_rate=graph.metrics.attack_success_rate,
        strengths=graph.attack.strengths,
        divergence_layer=divergence_layer(graph.layers, div.crossed[k]) if div else None,
        crossed=div.crossed[k] if div else None, layers=graph.layers)


def compare(a: Graph, b: Graph, strength_a: float | None = None,
            strength_b: float | None = None, key_a: str = "a", key_b: str = "b") -> Comparison:
    """``a`` and ``b`` compared at ``strength_a`` and ``strength_b`` (each the largest of its
    graph's strengths at most the one given; default ε_max)."""
    for name, g in (("a", a), ("b", b)):
        if not isinstance(g, Graph):
            raise MassifError(f"{name} must be a Graph (massif.Graph.load(path)), not "
                              f"{type(g).__name__}")
    for name, s in (("strength_a", strength_a), ("strength_b", strength_b)):
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float))):
            raise MassifError(f"{name} must be a number, not {type(s).__name__}")
    ka, kb = strength_index(a, strength_a), strength_index(b, strength_b)
    side_a, side_b = _side(a, key_a, ka), _side(b, key_b, kb)
    layers = list(a.layers) + [lay for lay in b.layers if lay not in a.layers]
    same = a.model.fingerprint == b.model.fingerprint
    neurons: list[ComparedNeuron] = []
    if same:
        in_a = {n.id: n for n in a.nodes}
        in_b = {n.id: n for n in b.nodes}
        order = {lay: i for i, lay in enumerate(layers)}
        node = lambda i: in_a.get(i) or in_b[i]  # noqa: E731
        ids = sorted(set(in_a) | set(in_b),
                     key=lambda i: (order[node(i).layer], node(i).channel))
        for nid in ids:
            na, nb = in_a.get(nid), in_b.get(nid)
            neurons.append(ComparedNeuron(
                id=nid, layer=node(nid).layer,
                a=state(na, side_a.strength) if na else None,
                b=state(nb, side_b.strength) if nb else None,
                vulnerability_a=na.vulnerability if na else None,
                vulnerability_b=nb.vulnerability if nb else None))
    return Comparison(a=side_a, b=side_b, same_model=same, layers=layers, neurons=neurons)


def split(c: Comparison, group: str) -> dict[str, list[ComparedNeuron]]:
    """The neurons ``group`` in A only, in both, and in B only."""
    out: dict[str, list[ComparedNeuron]] = {"a": [], "both": [], "b": []}
    for n in c.neurons:
        ina, inb = n.a == group, n.b == group
        if ina or inb:
            out["both" if ina and inb else "a" if ina else "b"].append(n)
    return out


def comparison_text(c: Comparison, most: int = 8) -> str:
    """The comparison for a terminal (``massif compare``)."""
    pct = lambda x: "–" if x is None else f"{x:.0%}"  # noqa: E731
    lines = [f"A: {c.a.label}", f"B: {c.b.label}", "",
             f"{'':<16}{'A':>10}{'B':>10}",
             f"{'clean accuracy':<16}{pct(c.a.clean_accuracy):>10}{pct(c.b.clean_accuracy):>10}",
             f"{'ASR':<16}{pct(c.a.asr):>10}{pct(c.b.asr):>10}",
             f"{'divergence':<16}{c.a.divergence_layer or 'none':>10}"
             f"{c.b.divergence_layer or 'none':>10}"]
    if c.a.crossed is not None or c.b.crossed is not None:
        lines += ["", f"{'crossed by':<16}{'A':>10}{'B':>10}"]
        for lay in c.layers:
            va = c.a.crossed[c.a.layers.index(lay)] if c.a.crossed and lay in c.a.layers else None
            vb = c.b.crossed[c.b.layers.index(lay)] if c.b.crossed and lay in c.b.layers else None
            lines.append(f"{lay:<16}{pct(va):>10}{pct(vb):>10}")
    if not c.same_model:
        lines += ["", f"The models differ ({c.a.model.name} {c.a.model.fingerprint}, "
                  f"{c.b.model.name} {c.b.model.fingerprint}): their neurons are different "
                  "units, so only the attacks and divergences are compared."]
        return "\n".join(lines)
    for group in GROUPS:
        parts = split(c, group)
        lines += ["", f"{group + ' neurons':<22}{'A only':>8}{'both':>6}{'B only':>8}"]
        for lay in c.layers:
            n = [sum(x.layer == lay for x in parts[s]) for s in ("a", "both", "b")]
            lines.append(f"{lay:<22}{n[0]:>8}{n[1]:>6}{n[2]:>8}")
    lines.append("")
    for group in GROUPS:
        parts = split(c, group)
        for side, name in (("a", "A"), ("b", "B")):
            vul = (lambda n: n.vulnerability_a) if side == "a" else (lambda n: n.vulnerability_b)
            items = sorted(parts[side], key=lambda n: (-(vul(n) or 0), n.id))
            shown = ", ".join(f"{n.id} ({vul(n):.2f})" if vul(n) is not None else n.id
                              for n in items[:most])
            more = f" and {len(items) - most} more" if len(items) > most else ""
            lines.append(f"{group} in {name} only (vulnerability): {shown or 'none'}{more}")
    both = [n for g in GROUPS for n in split(c, g)["both"]
            if n.vulnerability_a is not None and n.vulnerability_b is not None]
    both.sort(key=lambda n: (-abs(n.vulnerability_b - n.vulnerability_a), n.id))  # type: ignore[operator]
    moved = ", ".join(f"{n.id} {n.vulnerability_b - n.vulnerability_a:+.2f}"  # type: ignore[operator]
                      for n in both[:most] if n.vulnerability_b != n.vulnerability_a)
    lines.append(f"in both, vulnerability B − A: {moved or 'the same for every one'}")
    return "\n".join(lines)


def parse_ref(ref: str) -> tuple[str, float | None]:
    """``RUN`` or ``RUN@ε``: an analysis and the strength to compare it at."""
    if "@" in ref and not Path(ref).exists():
        run, _, value = ref.rpartition("@")
        try:
            return run, float(value)
        except ValueError:
            raise MassifError(f"{ref[:200]!r}: after @ comes a strength, such as @1.5") from None
    return ref, None
