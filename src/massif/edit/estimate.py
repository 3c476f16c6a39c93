"""What deleting each neuron would do, to first order, from one pass: the defense search's
shortlist (``defense.suggest_defense``).

``estimate_deletions(session, m, n_images, n_sample)`` runs, through the session's model with
mask ``m`` applied, on the first ``n_images`` benign images and the first ``n_sample`` images of
the all-class sample:

1. the clean images, forward and backward: which images the edited model gets right and the
   attack gradient (FGM/FGSM; PGD runs its own attack), hence the adaptive attack at ``ε_max``;
2. for the clean images, the attacked images and the sample, a *margin* per image: the benign
   logit over the best other one (clean; ``> 0``: right), the target's over the best other one
   (attacked, targeted; ``> 0``: a success; untargeted: the best other one over the benign
   logit), the true class's over the best other one (sample); and, from one backward pass each,
   the margin's gradient at every analysed layer.

The pass also counts the mask's own numbers exactly (``asr``, ``accuracy``,
``benign_accuracy``: what ``Session.measure_many`` counts). Deleting channel ``c`` of layer
``l`` (setting ``a_{l,c}`` to 0, or to its benign mean ``μ_c`` in mode ``mean``) moves each
margin by about ``Δ = −Σ_positions (a_{l,c} − fill)·∂margin/∂a_{l,c}`` (attribution patching:
a first-order Taylor step, the attack held fixed), and ``predict(l, c)`` counts the three
numbers again with the moved margins. It costs about three forward and backward passes for
all neurons at once, where measuring one deletion exactly costs about one; it is only an estimate (a
deletion early in the network, or one the adaptive attack routes around, can be far off), so
the search measures its shortlist exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attacks import attack_direction
from ..hooks import record
from .masks import Mask
from .session import Session


def _margin(logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """``z_cls − max_{j ≠ cls} z_j`` per row."""
    rows = torch.arange(len(logits), device=logits.device)
    other = logits.clone()
    other[rows, cls] = float("-inf")
    return logits[rows, cls] - other.amax(1)


@dataclass
class DeletionEstimate:
    """A mask's exact numbers on the search set, and ``predict`` for one more deletion."""

    asr: float
    accuracy: float  # on the sample
    benign_accuracy: float
    clean: torch.Tensor  # [n] the benign margin of the clean images
    attacked: torch.Tensor  # [n] the success margin of the attacked images
    sample: torch.Tensor  # [m] the true-class margin of the sample
    moves: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # layer → Δ, each [·, C]

    def predict(self, layer: str, channel: int) -> tuple[float, float, float]:
        """``(asr, accuracy, benign_accuracy)`` with ``layer:channel`` deleted too, to first
        order (module docstring)."""
        d_clean, d_attacked, d_sample = self.moves[layer]
        ok = self.clean + d_clean[:, channel] > 0
        hits = ok & (self.attacked + d_attacked[:, channel] > 0)
        n_ok = int(ok.sum())
        asr = int(hits.sum()) / n_ok if n_ok else 0.0
        acc = float((self.sample + d_sample[:, channel] > 0).float().mean()) \
            if len(self.sample) else 0.0
        return asr, acc, n_ok / max(len(ok), 1)


def estimate_deletions(session: Session, m: Mask, n_images: int, n_sample: int
                       ) -> DeletionEstimate:
    """The first-order effect of deleting each neuron on top of ``m`` (module docstring)."""
    s = session
    names = list(s.paths)
    n = min(n_images, len(s.images))
    mm = min(n_sample, len(s.sample_images))
    fills = {lay: s.means[s.paths[lay]] if m.mode == "mean" else None for lay in names}
    parts: dict[str, list[list[torch.Tensor]]] = {lay: [[], [], []] for lay in names}
    margins: list[list[torch.Tensor]] = [[], [], []]
    counts = [0, 0, 0]  # images right, successes among them, sample images right (argmax)
    benign = torch.tensor(s.benign, device=s.device)
    target = torch.tensor(s.target, device=s.device)
    eps = [s.strengths[-1]]

    def moves(margin: torch.Tensor, acts: dict[str, torch.Tensor], slot: int) -> None:
        grads = torch.autograd.grad(margin.sum(), [acts[lay] for lay in names])
        for lay, g in zip(names, grads):
            a = acts[lay].detach()
            if fills[lay] is not None:
                a = a - fills[lay].view(1, -1, *([1] * (a.ndim - 2)))
            parts[lay][slot].append(-(a * g).flatten(2).sum(2).float())
        margins[slot].append(margin.detach())

    with s.edited(m) as net:
        for start in range(0, n, s.batch_size):
            x = s.images[start : start + s.batch_size][: n - start]
            labels = s.labels(len(x))
            with record(net, s.paths, units=s.units) as acts:
                x0 = x.detach().requires_grad_(True)
                logits = net(x0)
                ok = logits.argmax(1) == s.benign
                counts[0] += int(ok.sum())
                direction = (attack_direction(net, x0, labels, s.attack.targeted,
                                              logits=logits).detach()
                             if s.attack.single_gradient else None)
                moves(_margin(logits, benign.expand(len(x))), acts, 0)
                del logits
            adv = s.attack_images(net, x, labels, direction, eps)[0]
            with record(net, s.paths, units=s.units) as acts:
                logits = net(adv.requires_grad_(True))
                counts[1] += int((s.hit(logits.argmax(1)) & ok).sum())
                success = (_margin(logits, target.expand(len(x))) if s.attack.targeted
                           else -_margin(logits, benign.expand(len(x))))
                moves(success, acts, 1)
                del logits
        for start in range(0, mm, s.batch_size):
            x = s.sample_images[start : start + s.batch_size][: mm - start]
            with record(net, s.paths, units=s.units) as acts:
                logits = net(x.detach().requires_grad_(True))
                counts[2] += int((logits.argmax(1) == s.sample_labels[start : start + len(x)])
                                 .sum())
                moves(_margin(logits, s.sample_labels[start : start + len(x)]), acts, 2)
                del logits

    clean, attacked, sample = (torch.cat(ms) if ms else torch.zeros(0) for ms in margins)
    out = {lay: tuple(torch.cat(p) if p else torch.zeros(0, s.layer_channels[lay])
                      for p in parts[lay]) for lay in names}
    return DeletionEstimate(
        asr=counts[1] / counts[0] if counts[0] else 0.0,
        accuracy=counts[2] / mm if mm else 0.0, benign_accuracy=counts[0] / max(n, 1),
        clean=clean, attacked=attacked, sample=sample, moves=out)  # type: ignore[arg-type]
