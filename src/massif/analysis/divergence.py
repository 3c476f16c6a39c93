"""Where an attacked image's representation leaves the benign class for the target class.

Definitions (``docs/method.md``, "Divergence"), for each analysed layer ``l``:

* ``s_l(x)``: the channel maxima of layer ``l`` on image ``x`` (``[C_l]``, as in the activation
  profile).
* ``μ^b_l``, ``μ^t_l``: the means of ``s_l`` over the clean images of the benign class and of the
  target class (``class_means``, a forward-only pass before the neuron profile).
* margin ``m_l(x) = cos(s_l(x), μ^t_l) − cos(s_l(x), μ^b_l)``: above 0 where ``x`` is closer, in
  angle, to the target class's mean than to its own class's.
* crossing layer ``c(x)``: the first layer from which the margin stays above 0 up to the last
  analysed layer ("the target wins and stays winning"); none when it is not above 0 at the last.
* ``crossed[k][l]``: the fraction of the correctly classified benign images whose image attacked
  at ``ε_k`` has crossed at or before layer ``l`` (so it never decreases from layer to layer).
* the class's **divergence layer**: the median crossing layer at ``ε_max`` among the images that
  cross, i.e. the first ``l`` with ``crossed[K][l] ≥ ½ crossed[K][last]``; none when no image
  crosses (``divergence_layer``, defined in ``schemas`` beside the ``Divergence`` it reads).

The profile of attacked images (``profile.profile_neurons``) calls ``margins`` and
``crossing`` on each batch and adds ``crossed_counts`` to its running sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..datasets import Dataset
from ..distributed import World
from ..hooks import frozen, record
from ..models import Model
from ..schemas import divergence_layer  # the rule itself, torch-free for compare and the page
from .streaming import Checkpoint, Progress, RunningSums, rounds

__all__ = ["ClassMeans", "class_means", "crossed_counts", "crossing", "divergence_layer",
           "margins"]


@dataclass
class ClassMeans:
    """``μ^b_l`` and ``μ^t_l`` per layer (float64 ``[C_l]``) and how many images each averages."""

    layers: list[str]
    benign: dict[str, torch.Tensor]
    target: dict[str, torch.Tensor]
    n_benign: int
    n_target: int

    def directions(self, device: torch.device, layers: Sequence[str] | None = None
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(μ^b_l/|μ^b_l|, μ^t_l/|μ^t_l|)`` for each of ``layers`` (default all), float32
        on ``device`` (a zero mean stays zero, so every cosine with it is 0)."""
        unit = lambda v: F.normalize(v.float(), dim=0).to(device)  # noqa: E731
        return [(unit(self.benign[lay]), unit(self.target[lay]))
                for lay in (self.layers if layers is None else layers)]


def class_means(model: Model, dataset: Dataset, benign_indices: Sequence[int],
                target_indices: Sequence[int], batch_size: int = 256,
                progress: Progress | None = None, checkpoint: Checkpoint | None = None,
                world: World | None = None, workers: int = 0) -> ClassMeans:
    """Mean channel maxima of every analysed layer over the clean images of both classes: one
    forward pass per image, streamed, resumable and shared over a ``world`` like the profile."""
    world = world or World()
    layers = list(model.layers)
    sums_b = {lay: torch.zeros(model.layer_channels[lay], dtype=torch.float64) for lay in layers}
    sums_t = {lay: t.clone() for lay, t in sums_b.items()}
    running = RunningSums(2, {"benign": sums_b, "target": sums_t}, checkpoint, world)
    counts = running.counts  # benign images, target images
    is_benign = set(benign_indices)
    both = list(benign_indices) + list(target_indices)
    end = start = running.resume()
    device = model.device
    with torch.no_grad(), frozen(model.module), \
            record(model.module, model.layers, units=model.units) as acts:
        for end, mine, x in rounds(dataset, both, batch_size, device, world, "means", progress,
                                   start=start, workers=workers):
            if x is not None:
                model.module(x)
                benign = torch.tensor([i in is_benign for i in mine], device=device)
                for lay in layers:
                    s = model.units[lay].summary(acts[lay]).double()
                    sums_b[lay] += s[benign].sum(0).cpu()
                    sums_t[lay] += s[~benign].sum(0).cpu()
                counts[0] += int(benign.sum())
                counts[1] += int((~benign).sum())
                acts.clear()
            running.save(end)
    running.save(end, force=True)
    running.finish()
    n_b, n_t = int(counts[0]), int(counts[1])
    for sums, n in ((sums_b, n_b), (sums_t, n_t)):
        for lay in layers:
            sums[lay] /= max(n, 1)
    return ClassMeans(layers=layers, benign=sums_b, target=sums_t, n_benign=n_b, n_target=n_t)


def margins(maxima: Sequence[torch.Tensor],
            directions: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """``m_l(x)`` as ``[B, L]`` from each layer's channel maxima ``[B, C_l]`` (in layer order)."""
    cols = []
    for s, (unit_b, unit_t) in zip(maxima, directions):
        u = F.normalize(s.float(), dim=1)
        cols.append(u @ unit_t - u @ unit_b)
    return torch.stack(cols, 1)


def crossing(m: torch.Tensor) -> torch.Tensor:
    """Each image's crossing layer (its index) from margins ``[B, L]``; ``L`` for none."""
    stays = (m > 0).flip(1).long().cumprod(1).flip(1)  # 1 where the target wins from l on
    return m.shape[1] - stays.sum(1)


def crossed_counts(cross: torch.Tensor, n_layers: int) -> torch.Tensor:
    """How many of the images have crossed at or before each layer, float64 ``[L]`` on the CPU."""
    hist = torch.bincount(cross.cpu(), minlength=n_layers + 1)[:n_layers]
    return hist.cumsum(0).double()


