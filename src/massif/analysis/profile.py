"""Profile a class: per-neuron statistics over benign and attacked images, streamed in batches.

Two passes over the benign class's images, each a batch at a time, so memory depends on the batch
size and the number of channels, never on the number of images (after a forward-only pass over
both classes' clean images, ``divergence.class_means``):

1. ``profile_neurons`` (every neuron of every analysed layer):
   1. forward the clean batch ``x`` (``x`` requires grad so every recorded activation is in the
      autograd graph); note which images the model gets right;
   2. FGM/FGSM: take the attack gradient from that same forward pass and build ``x_k`` for every
      strength at once; PGD: run the attack, all strengths as one batch with a per-sample ε;
   3. for each strength ``k`` (``x_0 = x``): record ``a_{l,i}(x_k)`` for all layers in one forward
      pass, then one backward pass per class (``z_b`` and ``z_t``) gives, for every layer at once,
      the attribution ``Σ_positions a · ∂z_c/∂a``; add ``max(0, ·)`` to the running sums, and
      ``s_{l,i} = max_positions a`` to the activation sums; count attack successes; with the
      class means, note where each correct image crosses to the target class (``divergence``).
   With ``importance="votes"`` (Summit) step 3 needs no backward pass: each image votes for the
   neurons whose ``s`` is in its top ``votes_top_k`` of the layer.
2. ``profile_edges`` (only the graph's nodes): on the clean images and on the images attacked at
   ``ε_max``, the influence of every channel ``j`` of the previous layer on node ``i``
   (``influence.accumulate_influence``),
   ``Σ_positions a_{l-1,j} · ∂s_{l,i}/∂a_{l-1,j}`` (gradient × activation through whatever block
   joins the layers; one backward pass per node on CPU, one batched pass
   (``is_grads_batched``) per 16 nodes on GPU, each stopping at the previous layer, each
   starting from the node's own branch where the layer concatenates branches, going through
   the branch's last convolution with the node's filter alone, and stopping before a pool
   between that convolution and the previous layer). The same pass
   runs the faithfulness check: the clean images (the benign class's clean accuracy under each
   mask) and the ``ε_max`` images the model gets right on clean (ASR and the target margin
   ``z_t − z_b``), through the model with the emphasized neurons masked, and with as many random
   neurons of the same layers masked; the layers before the earliest masked one run once for
   all the masks (or not at all: that layer's input is kept from the passes that recorded the
   clean and the ``ε_max`` images).

All sums are float64 on the CPU; means are taken at the end. With a ``Checkpoint`` the sums are
saved (atomically) every few seconds, and a rerun of the same request resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from ..attacks import Attack, attack_direction
from ..datasets import Dataset
from ..distributed import World
from ..errors import MassifError
from ..hooks import frozen, mask, module_input, record
from ..models import Model
from .divergence import ClassMeans, crossed_counts, crossing, margins
from .influence import accumulate_influence
from .streaming import Checkpoint, Progress, RunningSums, rounds


@dataclass
class NeuronProfile:
    """Class-mean statistics per layer: ``[K+1, C]`` tensors, row ``k`` for strength ``ε_k``."""

    layers: list[str]
    strengths: list[float]
    n_images: int = 0
    n_correct: int = 0
    successes: list[int] = field(default_factory=list)  # per strength, among correct images
    importance_benign: dict[str, torch.Tensor] = field(default_factory=dict)
    importance_target: dict[str, torch.Tensor] = field(default_factory=dict)
    activation: dict[str, torch.Tensor] = field(default_factory=dict)
    crossed: torch.Tensor | None = None  # [K+1, L]: fractions of the correct images (divergence)

    @property
    def clean_accuracy(self) -> float:
        return self.n_correct / self.n_images if self.n_images else 0.0

    @property
    def attack_success_rate(self) -> list[float]:
        return [s / self.n_correct if self.n_correct else 0.0 for s in self.successes]


@dataclass
class EdgeProfile:
    """Mean influence ``[n_nodes(l), C(l-1)]`` per layer ``l`` (rows follow ``nodes[l]``)."""

    nodes: dict[str, list[int]]
    influence_benign: dict[str, torch.Tensor] = field(default_factory=dict)
    influence_attacked: dict[str, torch.Tensor] = field(default_factory=dict)
    masked_emphasized_asr: float = 0.0
    masked_random_asr: float = 0.0
    random_draws: int = 0
    # the faithfulness check beyond the ASR (``schemas.Faithfulness``): the benign class's clean
    # accuracy under each mask, and the mean target margin ``z_t − z_b`` on the correct images
    # attacked at ε_max, unmasked and under each mask (random: means over the draws)
    clean_accuracy_emphasized: float = 0.0
    clean_accuracy_random: float = 0.0
    margin_unmasked: float = 0.0
    margin_emphasized: float = 0.0
    margin_random: float = 0.0


def attacked(model: Model, attack: Attack, x: torch.Tensor, labels: torch.Tensor,
              strengths: Sequence[float], batch_size: int,
              logits: torch.Tensor | None = None, x_grad: torch.Tensor | None = None):
    """Adversarial images ``[K, B, ...]`` for ``strengths``; FGM/FGSM reuse ``logits``."""
    if attack.single_gradient:
        if logits is not None and x_grad is not None:
            direction = attack_direction(model.module, x_grad, labels, attack.targeted,
                                         logits=logits)
        else:
            direction = attack_direction(model.module, x, labels, attack.targeted)
        return attack.from_direction(x.detach(), direction, strengths)
    per_call = max(1, (2 * batch_size) // max(1, x.shape[0]))
    parts = [attack.perturb(model.module, x.detach(), labels, strengths[i : i + per_call])
             for i in range(0, len(strengths), per_call)]
    return torch.cat(parts, 0)


def profile_neurons(
    model: Model, dataset: Dataset, indices: Sequence[int], benign: int, target: int,
    attack: Attack, strengths: Sequence[float], importance: str = "attribution",
    votes_top_k: int = 8, batch_size: int = 256, progress: Progress | None = None,
    checkpoint: Checkpoint | None = None, world: World | None = None, workers: int = 0,
    means: ClassMeans | None = None,
) -> NeuronProfile:
    """Pass 1 (see the module docstring). ``strengths[0]`` must be 0. With a ``checkpoint``,
    the sums are saved as batches finish and a rerun resumes after the last saved batch. With a
    ``world`` of several processes, each takes its share of every round of images and the
    sums are added over them (every rank gets the whole class's profile). With the class
    ``means`` (``divergence.class_means``), ``crossed`` counts where each attacked image
    crosses to the target class (``divergence``)."""
    world = world or World()
    layers = list(model.layers)
    device = model.device
    k_all = len(strengths)
    prof = NeuronProfile(layers=layers, strengths=list(strengths), successes=[0] * k_all)
    for name in layers:
        zeros = torch.zeros(k_all, model.layer_channels[name], dtype=torch.float64)
        prof.importance_benign[name] = zeros.clone()
        prof.importance_target[name] = zeros.clone()
        prof.activation[name] = zeros.clone()
    attack_labels_value = target if attack.targeted else benign
    sums = (prof.importance_benign, prof.importance_target, prof.activation)
    groups = dict(zip(("importance_benign", "importance_target", "activation"), sums))
    crossed = torch.zeros(k_all, len(layers), dtype=torch.float64)
    if means is not None:
        groups["divergence"] = {"crossed": crossed}
    running = RunningSums(2 + k_all, groups, checkpoint, world)
    counts = running.counts  # images, correct, successes per strength
    directions = means.directions(device) if means is not None else None
    end = start = running.resume()
    with frozen(model.module), record(model.module, model.layers, units=model.units) as acts:
        for end, _, x in rounds(dataset, indices, batch_size, device, world, "profile", progress,
                              start=start, workers=workers):
            if x is not None:
                _profile_batch(model, x, benign, target, attack, strengths, importance,
                               votes_top_k, batch_size, acts, prof, counts,
                               attack_labels_value, directions, crossed)
            running.save(end)
    running.save(end, force=True)
    running.finish()
    prof.n_images, prof.n_correct = int(counts[0]), int(counts[1])
    prof.successes = [int(v) for v in counts[2:]]
    n = max(prof.n_images, 1)
    for d in sums:
        for name in d:
            d[name] /= n
    if means is not None:
        prof.crossed = crossed / max(prof.n_correct, 1)
    return prof


def _profile_batch(model: Model, x: torch.Tensor, benign: int, target: int, attack: Attack,
                   strengths: Sequence[float], importance: str, votes_top_k: int,
                   batch_size: int, acts: dict[str, torch.Tensor], prof: NeuronProfile,
                   counts: torch.Tensor, attack_labels_value: int,
                   directions: list | None = None, crossed: torch.Tensor | None = None) -> None:
    """Add one batch's images to the sums of pass 1 (and, with the class means'
    ``directions``, where its correct images cross to ``crossed``)."""
    layers, device, k_all = prof.layers, x.device, len(strengths)
    b = x.shape[0]
    attack_labels = torch.full((b,), attack_labels_value, device=device)
    x0 = x.detach().requires_grad_(True)
    adv: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    for k in range(k_all):
        xk = x0 if k == 0 else adv[k - 1].requires_grad_(True)  # type: ignore[index]
        logits = model.module(xk)
        pred = logits.argmax(1)
        if k == 0:
            if not torch.isfinite(logits).all():
                raise MassifError("the model's outputs contain NaN or infinity on clean "
                                  "images; check the model, its weights and the data")
            correct = pred == benign
            counts[0] += b
            counts[1] += int(correct.sum())
        hit = (pred == target) if attack.targeted else (pred != benign)
        counts[2 + k] += int((hit & correct).sum())
        recorded = [acts[name] for name in layers]
        maxima = [model.units[name].summary(a.detach())  # s per layer, [B, units]
                  for name, a in zip(layers, recorded)]
        if directions is not None and crossed is not None:
            cross = crossing(margins(maxima, directions))[correct]  # type: ignore[index]
            crossed[k] += crossed_counts(cross, len(layers))
        if importance == "attribution":
            grads_b = torch.autograd.grad(logits[:, benign].sum(), recorded, retain_graph=True)
            grads_t = torch.autograd.grad(logits[:, target].sum(), recorded, retain_graph=True)
            for name, a, gb, gt in zip(layers, recorded, grads_b, grads_t):
                a = a.detach()
                prof.importance_benign[name][k] += _positive_attribution(a, gb)
                prof.importance_target[name][k] += _positive_attribution(a, gt)
        for name, s in zip(layers, maxima):
            prof.activation[name][k] += s.double().sum(0).cpu()
            if importance == "votes":
                top = s.topk(min(votes_top_k, s.shape[1]), dim=1).indices
                votes = torch.zeros_like(s).scatter_(1, top, 1.0).double().sum(0).cpu()
                prof.importance_benign[name][k] += votes
                prof.importance_target[name][k] += votes
        if k == 0 and k_all > 1:
            adv = attacked(model, attack, x, attack_labels, strengths[1:], batch_size,
                           logits=logits, x_grad=x0).detach()
        del logits, recorded, maxima
        acts.clear()


def _positive_attribution(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``Σ_images max(0, Σ_positions a·g)`` per unit, as float64 ``[units]`` on the CPU (``a``,
    ``g``: canonical views, ``[B, units, *positions]``; every position, a class token too)."""
    per_image = (a * g).flatten(2).sum(2)  # [B, units]
    return per_image.clamp_min(0).double().sum(0).cpu()


def profile_edges(
    model: Model, dataset: Dataset, indices: Sequence[int], benign: int, target: int,
    attack: Attack, max_strength: float, nodes: dict[str, list[int]],
    emphasized: dict[str, list[int]], random_masks: list[dict[str, list[int]]],
    batch_size: int = 256, progress: Progress | None = None,
    checkpoint: Checkpoint | None = None, world: World | None = None, workers: int = 0,
    fx_graph: Any = "auto",
) -> EdgeProfile:
    """Pass 2 (see the module docstring): influence into ``nodes`` and the faithfulness check.
    Resumable like pass 1 through ``checkpoint``, shared over a ``world`` like pass 1.

    The faithfulness check attacks only the images the model gets right (the others cannot
    count as successes; the clean accuracy under each mask counts every image), and, where
    ``fx_graph`` allows (``edit.cut``: the model traced with its layers as leaves; ``"auto"``:
    traced here, which patches torch process-wide for a moment; ``None``: never), runs the
    layers before the earliest masked one once per batch for all the masks."""
    world = world or World()
    layers = list(model.layers)
    device = model.device
    out = EdgeProfile(nodes=nodes, random_draws=len(random_masks))
    for prev, name in zip(layers, layers[1:]):
        shape = (len(nodes.get(name, [])), model.layer_channels[prev])
        out.influence_benign[name] = torch.zeros(shape, dtype=torch.float64)
        out.influence_attacked[name] = torch.zeros(shape, dtype=torch.float64)
    to_paths = lambda m: {model.layers[lay]: ch for lay, ch in m.items() if ch}  # noqa: E731
    attack_value = target if attack.targeted else benign

    def successes(logits: torch.Tensor) -> int:
        pred = logits.argmax(1)
        return int(((pred == target) if attack.targeted else (pred != benign)).sum())

    under_masks = _UnderMasks(
        model, [to_paths(emphasized), *(to_paths(draw) for draw in random_masks)], fx_graph)
    first_input: list[tuple[torch.Tensor, int]] = []  # its input on ``adv``, and version
    first_clean: list[tuple[torch.Tensor, int]] = []  # its input on ``x``, and version

    def margin(logits: torch.Tensor) -> float:
        """The sum over the rows of the target margin ``z_t − z_b``."""
        return float((logits[:, target] - logits[:, benign]).double().sum())

    running = RunningSums(9, {"influence_benign": out.influence_benign,
                              "influence_attacked": out.influence_attacked}, checkpoint, world)
    # images, correct, hits with the emphasized / random neurons masked, clean images right
    # with them masked, target margins on the correct attacked images unmasked and masked
    counts = running.counts
    end = start = running.resume()
    with frozen(model.module):
        for end, _, x in rounds(dataset, indices, batch_size, device, world, "edges", progress,
                              start=start, workers=workers):
            if x is None:
                running.save(end)
                continue
            b = x.shape[0]
            labels = torch.full((b,), attack_value, device=device)
            parts: dict[str, list[torch.Tensor]] = {}
            with record(model.module, model.layers, parts, model.units) as acts:
                x0 = x.detach().requires_grad_(True)
                with module_input(model.module, under_masks.first, first_clean) \
                        if under_masks.first else nullcontext():
                    logits = model.module(x0)
                correct = logits.argmax(1) == benign
                accumulate_influence(layers, acts, nodes, out.influence_benign, parts,
                                     units=model.units)
                adv = attacked(model, attack, x, labels, [max_strength], batch_size,
                               logits=logits, x_grad=x0)[0].detach()
                acts.clear()
                parts.clear()
                del logits
                with module_input(model.module, under_masks.first, first_input) \
                        if under_masks.first else nullcontext():
                    adv_logits = model.module(adv.requires_grad_(True))
                accumulate_influence(layers, acts, nodes, out.influence_attacked, parts,
                                     units=model.units)
                acts.clear()
                parts.clear()
            counts[0] += b
            counts[1] += int(correct.sum())
            under_masks.build(x[:2])
            emph, *others = under_masks.logits(x, torch.ones_like(correct), first_clean)
            counts[4] += int((emph.argmax(1) == benign).sum())
            if others:
                counts[5] += sum(int((z.argmax(1) == benign).sum()) for z in others) / len(others)
            if correct.any():
                counts[6] += margin(adv_logits.detach()[correct])
                emph, *others = under_masks.logits(adv, correct, first_input)
                counts[2] += successes(emph)
                counts[7] += margin(emph)
                if others:
                    counts[3] += sum(successes(z) for z in others) / len(others)
                    counts[8] += sum(margin(z) for z in others) / len(others)
            del adv_logits
            running.save(end)
    running.save(end, force=True)
    running.finish()
    n = max(int(counts[0]), 1)
    for d in (out.influence_benign, out.influence_attacked):
        for name in d:
            d[name] /= n
    n_correct = int(counts[1])
    out.masked_emphasized_asr = float(counts[2]) / n_correct if n_correct else 0.0
    out.masked_random_asr = float(counts[3]) / n_correct if n_correct else 0.0
    n_images = int(counts[0])
    out.clean_accuracy_emphasized = float(counts[4]) / n_images if n_images else 0.0
    out.clean_accuracy_random = float(counts[5]) / n_images if n_images else 0.0
    out.margin_unmasked, out.margin_emphasized, out.margin_random = (
        float(counts[i]) / n_correct if n_correct else 0.0 for i in (6, 7, 8))
    return out


class _UnderMasks:
    """The model's logits on some images under each of ``masks`` (module path → channels).

    Where it can, it runs the layers before the earliest masked one (``first``) once for all the
    masks: through the cut of the model just before that layer (``edit.cut``, built and checked
    by ``build``), or from ``first``'s input itself when the caller kept it
    (``hooks.module_input``) and the cut shows that input is all the rest reads; else the whole
    model once per mask."""

    def __init__(self, model: Model, masks: list[dict[str, list[int]]], fx_graph: Any) -> None:
        self.model, self.masks, self.fx_graph = model, masks, fx_graph
        self.masked = {path for m in masks for path, chans in m.items() if len(chans)}
        self.paths = list(model.layers.values())
        self.first = next((p for p in self.paths if p in self.masked), None)
        self.cut: Any = None
        self.built = self.first is None or fx_graph is None

    def build(self, probe: torch.Tensor) -> None:
        """Find and check the cut (once; ``probe``: a few images)."""
        if self.built:
            return
        from ..edit.cut import check, cut, trace

        net, self.built = self.model.module, True
        auto = self.fx_graph == "auto"  # (``edit.cache.AUTO``)
        graph = trace(net, self.paths) if auto else self.fx_graph
        c = cut(net, graph, self.first, self.paths, before=True) if graph is not None else None
        if c is not None and c.covers(self.masked) and check(c, net, probe):
            self.cut = c

    @torch.no_grad()
    def logits(self, images: torch.Tensor, rows: torch.Tensor,
               kept: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
        """The logits of ``images[rows]`` under each mask; ``kept``: ``[(first's input on
        images, its version then)]`` or ``[]``."""
        c, net = self.cut, self.model.module
        if c is None:
            inputs, rest = (images[rows],), net
        elif c.only_input and kept and kept[0][0]._version == kept[0][1]:
            inputs, rest = (kept[0][0][rows],), c.suffix
        else:
            inputs, rest = c.prefix(images[rows]), c.suffix
        out = []
        for m in self.masks:
            with mask(net, m, units=self.model.path_units):
                out.append(rest(*inputs))
        return out
