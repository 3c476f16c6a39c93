"""Build the benign, attacked and merged attribution graphs from profiles (pure and fast).

Definitions (docs/method.md, "Definitions"):

1. **Benign graph**: per layer, the top ``N`` neurons by ``I^b(0)`` (clean images toward the
   benign class) among those with importance > 0 (``N``: nodes per layer, or a third of a
   narrower layer's units, ``layer_nodes``). **Attacked graph**: the same by ``I^t(K)``
   (images attacked at ``ε_max``, toward the target).
2. **Merged graph**: a node in both is *shared*, benign only *suppressed*, attacked only
   *emphasized*.
3. **Flip index** ``k*`` of a suppressed / emphasized node: the first ``k ≥ 1`` at which it has
   made half of its whole move (emphasized: ``I^t(k) − I^t(0) ≥ ½(I^t(K) − I^t(0))``; suppressed:
   ``I^b(0) − I^b(k) ≥ ½(I^b(0) − I^b(K))``); ``K`` when no ``k`` qualifies.
   ``flip_strength = ε_{k*}``, ``vulnerability = 1 − (k* − 1)/K``.
4. **Edges**: into each node of a layer other than the first, from the previous layer's nodes,
   the top ``E`` by ``max(influence_benign, influence_attacked)`` among those > 0.

(The divergence layer comes from the images, not the graphs: ``divergence``.)
"""

from __future__ import annotations

import random

import torch

from ..schemas import Edge, Node
from .profile import EdgeProfile, NeuronProfile

GROUP_ORDER = {"suppressed": 0, "shared": 1, "emphasized": 2}


def top_neurons(scores: torch.Tensor, n: int) -> list[int]:
    """Indices of the ``n`` largest positive entries of ``scores`` (ties: lower index first)."""
    positive = torch.nonzero(scores > 0).flatten()
    if positive.numel() == 0:
        return []
    order = sorted(positive.tolist(), key=lambda i: (-float(scores[i]), i))
    return order[:n]


NARROW_SHARE = 3  # a narrow layer's graphs take at most 1/NARROW_SHARE of its units


def layer_nodes(profile: NeuronProfile, nodes_per_layer: int) -> dict[str, int]:
    """The nodes per layer each layer's graphs take: ``nodes_per_layer`` (``N``), or a third
    of the layer's units (rounded down, at least 1) in a **narrow** layer: one of fewer than
    ``3N`` units where more than a third of them matter to both graphs (importance > 0 toward
    the benign class on the clean images and toward the target at ``ε_max``).

    Pitfall this avoids: the benign and the attacked graph each take the top ``N`` of a layer,
    so in a layer of ``C < 2N`` units the two sets must overlap, and where every unit matters
    to both, ``N ≥ C`` puts every unit in both: all *shared*, none *emphasized*, and the graph
    says nothing about the attack (the CIFAR-10 tutorial CNN's ``relu1`` has 6 channels,
    ``relu2`` 16, against the default 8). A third leaves room for two disjoint sets and a third
    of the layer outside both, where the faithfulness check draws its random neurons. A layer
    whose graphs already part (few units matter to both, as in a hand-set model whose units
    each serve one class) keeps ``N``, and so does every layer of at least ``3N`` units (all
    the bundled models' at the default 8)."""
    out = {}
    for lay in profile.layers:
        benign = profile.importance_benign[lay][0] > 0
        attacked = profile.importance_target[lay][-1] > 0
        width = benign.numel()
        third = max(1, width // NARROW_SHARE)
        narrow = width < NARROW_SHARE * nodes_per_layer and int((benign & attacked).sum()) > third
        out[lay] = min(nodes_per_layer, third) if narrow else nodes_per_layer
    return out


def select(profile: NeuronProfile, nodes_per_layer: int | dict[str, int]) -> tuple[dict, dict]:
    """Benign and attacked node sets per layer (``nodes_per_layer``: one count for every layer,
    or one per layer as ``layer_nodes`` gives)."""
    def n(lay: str) -> int:
        return nodes_per_layer[lay] if isinstance(nodes_per_layer, dict) else nodes_per_layer

    benign = {lay: top_neurons(profile.importance_benign[lay][0], n(lay))
              for lay in profile.layers}
    attacked = {lay: top_neurons(profile.importance_target[lay][-1], n(lay))
                for lay in profile.layers}
    return benign, attacked


def flip_index(curve: list[float], rising: bool) -> int:
    """First ``k ≥ 1`` at which ``curve`` made half its move from ``k = 0`` to ``k = K``."""
    last = len(curve) - 1
    if last < 1:
        return 0
    if rising:
        whole = curve[last] - curve[0]
        moved = [curve[k] - curve[0] for k in range(len(curve))]
    else:
        whole = curve[0] - curve[last]
        moved = [curve[0] - curve[k] for k in range(len(curve))]
    for k in range(1, last + 1):
        if moved[k] >= 0.5 * whole:
            return k
    return last


def merged_nodes(profile: NeuronProfile, benign: dict, attacked: dict) -> list[Node]:
    strengths = profile.strengths
    big_k = len(strengths) - 1
    nodes = []
    for lay in profile.layers:
        b_set, a_set = set(benign[lay]), set(attacked[lay])
        for ch in sorted(b_set | a_set):
            group = "shared" if ch in b_set and ch in a_set else (
                "suppressed" if ch in b_set else "emphasized")
            imp_b = profile.importance_benign[lay][:, ch].tolist()
            imp_t = profile.importance_target[lay][:, ch].tolist()
            vul = flip = None
            if group != "shared" and big_k >= 1:
                k_star = flip_index(imp_t if group == "emphasized" else imp_b,
                                    rising=group == "emphasized")
                flip = float(strengths[k_star])
                vul = 1.0 - (k_star - 1) / big_k
            nodes.append(Node(
                id=f"{lay}:{ch}", layer=lay, channel=ch, group=group, vulnerability=vul,
                flip_strength=flip, importance_benign=imp_b, importance_target=imp_t,
                activation=profile.activation[lay][:, ch].tolist(),
            ))
    layer_pos = {lay: i for i, lay in enumerate(profile.layers)}
    nodes.sort(key=lambda n: (layer_pos[n.layer], GROUP_ORDER[n.group],
                              -(n.vulnerability or 0.0), n.channel))
    return nodes


def node_channels(nodes: list[Node]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for n in nodes:
        out.setdefault(n.layer, []).append(n.channel)
    return out


def edges(layers: list[str], nodes: list[Node], influence: EdgeProfile,
          edges_per_node: int) -> list[Edge]:
    """Top incoming edges of every node of a layer other than the first (rule 4)."""
    chans = node_channels(nodes)
    result = []
    for prev, lay in zip(layers, layers[1:]):
        sources = chans.get(prev, [])
        for row, ch in enumerate(influence.nodes.get(lay, [])):
            ib = influence.influence_benign[lay][row]
            ia = influence.influence_attacked[lay][row]
            scored = [(max(float(ib[j]), float(ia[j])), j) for j in sources]
            scored = [(s, j) for s, j in scored if s > 0]
            scored.sort(key=lambda t: (-t[0], t[1]))
            for _, j in scored[:edges_per_node]:
                result.append(Edge(source=f"{prev}:{j}", target=f"{lay}:{ch}",
                                   influence_benign=float(ib[j]),
                                   influence_attacked=float(ia[j])))
    return result


def random_masks(emphasized: dict[str, list[int]], layer_channels: dict[str, int],
                 draws: int = 5, seed: int = 0) -> list[dict[str, list[int]]]:
    """``draws`` masks, each as many random neurons per layer as ``emphasized`` has there,
    drawn from that layer's other channels."""
    rng = random.Random(seed)
    masks = []
    for _ in range(draws):
        draw = {}
        for lay, chans in emphasized.items():
            others = [c for c in range(layer_channels[lay]) if c not in set(chans)]
            draw[lay] = sorted(rng.sample(others, min(len(chans), len(others))))
        masks.append(draw)
    return masks
