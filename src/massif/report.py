"""A short human summary of a merged graph, as printed at the end of ``massif analyze``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .contract import Graph


def summary(graph: Graph, most_vulnerable: int = 5) -> str:
    g = graph
    kind = "targeted" if g.attack.targeted else "untargeted"
    lines = [
        f"MASSIF: {g.benign.name} -> {g.target.name}, {kind} {g.attack.name.upper()} "
        f"({g.attack.norm}) up to {g.attack.strengths[-1]:g} on [0, 1] images",
        f"model {g.model.name}, {g.benign.n_images} images, "
        f"clean accuracy {g.metrics.clean_accuracy:.1%}",
        "",
        "attack success rate by strength:",
        "  " + "  ".join(f"{s:g}: {a:.0%}" for s, a in
                         zip(g.attack.strengths, g.metrics.attack_success_rate)),
        "",
        f"{'layer':<12}{'suppressed':>11}{'shared':>8}{'emphasized':>11}",
    ]
    for layer in g.layers:
        counts = [len(g.nodes_in(layer, grp)) for grp in ("suppressed", "shared", "emphasized")]
        mark = "  <- divergence" if layer == g.metrics.divergence_layer else ""
        lines.append(f"{layer:<12}{counts[0]:>11}{counts[1]:>8}{counts[2]:>11}{mark}")
    moved = [n for n in g.nodes if n.vulnerability is not None]
    moved.sort(key=lambda n: (-(n.vulnerability or 0), n.flip_strength or 0, n.id))
    lines += ["", "most vulnerable neurons (flip at the weakest strength):"]
    for n in moved[:most_vulnerable]:
        lines.append(f"  {n.id:<14} {n.group:<11} vulnerability {n.vulnerability:.2f}, "
                     f"flips at {n.flip_strength:g}")
    if not moved:
        lines.append("  none: the attack shares every graph neuron")
    f = g.metrics.faithfulness
    lines += [
        "",
        f"divergence layer: {g.metrics.divergence_layer or 'none'}",
        f"faithfulness: ASR at {g.attack.strengths[-1]:g} with the {f.n_masked} emphasized "
        f"neurons masked {f.masked_emphasized_asr:.0%}, with as many random ones "
        f"{f.masked_random_asr:.0%} (unmasked {g.metrics.attack_success_rate[-1]:.0%})",
    ]
    return "\n".join(lines)
