"""APGD-CE and APGD-T: Auto-PGD with the cross-entropy or the targeted DLR loss (AutoAttack's
gradient attacks), many strengths at once.

Paper: F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690). Norms: L∞ and L2; a strength is
the radius ε of the ball, as for PGD. Reference implementation: torchattacks' ``APGD`` and
``APGDT`` (tested equal in ``tests/unit/test_attacks.py``).

One run (``_run``), on images ``x`` with radius ``ε`` per image:

1. Start at a random point of the ε-sphere's box (L∞: ``x + ε·t/‖t‖∞``, ``t`` uniform in
   [−1, 1]; L2: ``x + ε·t/‖t‖₂``, ``t`` Gaussian), clipped to [0, 1]; the step size is ``2ε``.
2. ``steps`` times: a gradient step (L∞ signed, L2 normalised) projected onto the ball and
   [0, 1], then a momentum step ``x + 0.75·(z − x) + 0.25·(x − x_prev)`` projected again (no
   momentum on the first step). Keep the iterate with the highest loss, and the last one that
   succeeds.
3. At checkpoints (the first after ``0.22·steps`` steps, then ever closer, down to
   ``0.06·steps``), halve an image's step size and restart it from its best iterate when its
   loss rose in at most ``rho`` (0.75) of the steps since the last checkpoint, or when the
   previous checkpoint did not halve it and its best loss has not grown since.

Losses: **APGD-CE** maximises ``CE(z, y)`` (untargeted) or ``−CE(z, t)`` (targeted). **APGD-T**
maximises the targeted DLR loss ``−(z_y − z_t) / (z_π1 − ½z_π3 − ½z_π4)`` (π: the logits
sorted, largest first), which needs at least 4 classes. Targeted (MASSIF's default), ``t`` is
the target and ``y`` the clean prediction; untargeted (AutoAttack's setting), ``y`` is the true
class and the runs go through the ``target_classes`` (9) most likely other classes in turn.

A success is ``t`` (targeted) or anything but ``y`` (untargeted). ``restarts`` runs (per target
class) are made on the images not yet successful, the random start drawn from a generator
seeded with ``seed`` (CPU, so every device draws the same points). Images that succeed come
back as the last successful iterate, the others as their highest-loss iterate (torchattacks
gives the others back unchanged; the attacked graph wants the attack's best try).

Defaults (``massif.attacks.ATTACKS``): 10 steps (PGD's; AutoAttack uses 100, the checks of
``massif edit --check`` do), 1 restart, largest strength 3.5 (L2) or 0.1 (L∞).

One difference from torchattacks 3.5.1, on purpose: its L2 APGD-T takes the *first* image's
step size for the whole batch once sizes differ (``step_size[0]``); ours keeps each image's (as
AutoAttack and torchattacks' APGD do). Equal for one image at a time.

Shapes: ``perturb(model, x [B, C, H, W] in [0, 1], labels [B], strengths [K])`` →
``[K, B, C, H, W]``; all strengths run as one batch of ``K·B`` images with a per-image ε.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MassifError, short

_TINY = 1e-12


@dataclass(frozen=True)
class APGD:
    """APGD-CE (``name="apgd-ce"``) or APGD-T (``name="apgd-t"``); see the module docstring."""

    name: str = "apgd-t"
    norm: str = "linf"
    targeted: bool = True
    steps: int = 10
    restarts: int = 1
    seed: int = 0
    rho: float = 0.75
    target_classes: int = 9

    def __post_init__(self) -> None:
        if self.name not in ("apgd-ce", "apgd-t"):
            raise MassifError(f"unknown APGD loss {short(self.name)}; apgd-ce or apgd-t")
        if self.norm not in ("l2", "linf"):
            raise MassifError(f"unknown norm {short(self.norm)}; choose l2 or linf")
        if not isinstance(self.targeted, bool):
            raise MassifError("targeted must be True or False")
        for field in ("steps", "restarts", "target_classes", "seed"):
            v = getattr(self, field)
            low = 0 if field == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise MassifError(f"{field} must be a whole number ≥ {low}, not {short(v)}")
        if isinstance(self.rho, bool) or not isinstance(self.rho, (int, float)) \
                or not 0 < self.rho <= 1:
            raise MassifError(f"rho must be a number in (0, 1], not {short(self.rho)}")

    @property
    def single_gradient(self) -> bool:
        return False

    def options(self) -> dict[str, float | int]:
        """The recipe as ``graph.json`` keeps it."""
        return {"steps": self.steps, "restarts": self.restarts, "seed": self.seed}

    def perturb(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                strengths: Sequence[float]) -> torch.Tensor:
        """Adversarial images ``[K, B, C, H, W]`` for radii ``ε_1 … ε_K``."""
        x = x.detach()
        k, b = len(strengths), x.shape[0]
        eps = torch.as_tensor(list(strengths), dtype=x.dtype, device=x.device)
        return self.attack(model, x.repeat(k, 1, 1, 1), labels.repeat(k),
                           eps.repeat_interleave(b)).view(k, *x.shape)

    # ------------------------------------------------------------------ the loop over runs

    def attack(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
               eps: torch.Tensor) -> torch.Tensor:
        """APGD on ``x: [B, ...]`` with a per-image radius ``eps: [B]``: restarts (and, for
        untargeted APGD-T, target classes) on the images not yet successful."""
        return self.attack_with_success(model, x, labels, eps)[0]

    def attack_with_success(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                            eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``attack``, and which images it made successful (or were so clean): ``[B]``."""
        x = x.detach()
        with torch.no_grad():
            clean = model(x)
        if self.name == "apgd-t" and clean.shape[1] < 4:
            raise MassifError(f"APGD-T's DLR loss needs at least 4 classes; the model has "
                              f"{clean.shape[1]}")
        pred = clean.argmax(1)
        done = (pred == labels) if self.targeted else (pred != labels)
        truth = pred if self.targeted else labels  # y of the loss
        out = x.clone()
        out_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        generator = torch.Generator().manual_seed(self.seed)
        ranks: list[int | None] = [None]
        if self.name == "apgd-t" and not self.targeted:
            ranks = list(range(2, min(self.target_classes, clean.shape[1] - 1) + 2))
        for rank in ranks:
            for _ in range(self.restarts):
                todo = (~done).nonzero().squeeze(1)
                if todo.numel() == 0:
                    return out, done
                xs = x[todo]
                aim = labels[todo] if self.targeted else None  # t of the loss
                if rank is not None:  # untargeted APGD-T: the rank-th most likely class
                    with torch.no_grad():
                        aim = model(xs).sort(dim=1)[1][:, -rank]
                best, hit, loss, last_hit = self._run(model, xs, truth[todo], aim,
                                                      eps[todo], generator)
                keep = ~hit & (loss > out_loss[todo])
                out[todo[keep]] = best[keep]
                out_loss[todo[keep]] = loss[keep]
                out[todo[hit]] = last_hit[hit]
                done[todo[hit]] = True
        return out, done

    # ------------------------------------------------------------------ one run

    def _loss(self, logits: torch.Tensor, y: torch.Tensor,
              aim: torch.Tensor | None) -> torch.Tensor:
        """The loss to maximise, per image."""
        if self.name == "apgd-ce":
            if self.targeted:
                return -F.cross_entropy(logits, aim, reduction="none")
            return F.cross_entropy(logits, y, reduction="none")
        rows = torch.arange(len(logits), device=logits.device)
        top = logits.sort(dim=1)[0]
        scale = top[:, -1] - 0.5 * top[:, -3] - 0.5 * top[:, -4] + _TINY
        return -(logits[rows, y] - logits[rows, aim]) / scale

    def _hit(self, logits: torch.Tensor, y: torch.Tensor,
             aim: torch.Tensor | None) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == aim if self.targeted else pred != y

    def _gradient(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                  aim: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_adv = x_adv.detach().requires_grad_(True)
        logits = model(x_adv)
        loss = self._loss(logits, y, aim)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        return grad.detach(), loss.detach(), logits.detach()

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             aim: torch.Tensor | None, eps: torch.Tensor, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One run (module docstring): the highest-loss iterate, which images succeeded at
        some step, the highest loss, and the last successful iterate (else the start)."""
        n, b = self.steps, x.shape[0]
        shape = (-1,) + (1,) * (x.ndim - 1)
        eps_v = eps.view(shape)
        first_check, min_check, shrink = (max(int(0.22 * n), 1), max(int(0.06 * n), 1),
                                           max(int(0.03 * n), 1))
        if self.norm == "linf":
            t = (2 * torch.rand(x.shape, generator=generator) - 1).to(x.device, x.dtype)
            x_adv = x + eps_v * t / t.flatten(1).abs().amax(1).view(shape)
        else:
            t = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            x_adv = x + eps_v * t / (_l2(t) + _TINY)
        x_adv = x_adv.clamp(0.0, 1.0)
        x_best, x_hit = x_adv.clone(), x_adv.clone()
        losses = torch.zeros(n, b, device=x.device)
        grad, loss, logits = self._gradient(model, x_adv, y, aim)
        grad_best = grad.clone()
        hit_any = self._hit(logits, y, aim)
        loss_best = loss.clone()
        step = 2.0 * eps_v.clone()
        x_old = x_adv.clone()
        k, since = first_check, 0
        best_at_check = loss_best.clone()
        halved_at_check = torch.ones(b, dtype=torch.bool, device=x.device)
        for i in range(n):
            with torch.no_grad():
                moved = x_adv - x_old
                x_old = x_adv.clone()
                a = 0.75 if i > 0 else 1.0
                if self.norm == "linf":
                    z = self._box(x_adv + step * grad.sign(), x, eps_v)
                    x_adv = self._box(x_adv + (z - x_adv) * a + moved * (1 - a), x, eps_v)
                else:
                    z = x_adv + step * grad / (_l2(grad) + _TINY)
                    z = self._ball(z, x, eps_v, 0.0)
                    z = x_adv + (z - x_adv) * a + moved * (1 - a)
                    x_adv = self._ball(z, x, eps_v, _TINY)
            grad, loss, logits = self._gradient(model, x_adv, y, aim)
            hit = self._hit(logits, y, aim)
            hit_any |= hit
            x_hit[hit] = x_adv[hit]
            better = loss > loss_best
            x_best[better] = x_adv[better]
            grad_best[better] = grad[better]
            loss_best = torch.where(better, loss, loss_best)
            losses[i] = loss
            since += 1
            if since == k:
                rose = torch.zeros(b, device=x.device)
                for j in range(k):  # index -1 is the last row, as in AutoAttack
                    rose += (losses[i - j] > losses[i - j - 1]).float()
                halve = (rose <= k * self.rho) | (~halved_at_check & (best_at_check >= loss_best))
                halved_at_check = halve.clone()
                best_at_check = loss_best.clone()
                if bool(halve.any()):
                    step[halve] /= 2.0
                    x_adv[halve] = x_best[halve]
                    grad[halve] = grad_best[halve]
                since = 0
                k = max(k - shrink, min_check)
        return x_best, hit_any, loss_best, x_hit

    @staticmethod
    def _box(z: torch.Tensor, x: torch.Tensor, eps_v: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.min(torch.max(z, x - eps_v), x + eps_v), 0.0, 1.0)

    @staticmethod
    def _ball(z: torch.Tensor, x: torch.Tensor, eps_v: torch.Tensor,
              pad: float) -> torch.Tensor:
        d = z - x
        norm = _l2(d)
        return torch.clamp(x + d / (norm + _TINY) * torch.min(eps_v, norm + pad), 0.0, 1.0)


def _l2(t: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm, shaped to broadcast: ``[B, 1, …]``."""
    return t.pow(2).sum(dim=tuple(range(1, t.ndim)), keepdim=True).sqrt()
