"""The gradient attacks: FGM, FGSM and PGD (``Attack``), many strengths at once.

The shape every attack shares (``massif.attacks``): ``Attack(...).perturb(model, x, labels,
strengths)`` takes images ``x: [B, C, H, W]`` in [0, 1], ``labels: [B]`` (the target class when
``targeted``, the true class otherwise) and strengths ``ε_1 … ε_K`` (floats), and returns
adversarial images ``[K, B, C, H, W]``, clipped to [0, 1]. The model's normalisation lives
inside the model.

* **FGM** (L2, Miyato et al. 2017; the MASSIF/Bluff papers' default): ``x + ε·d/‖d‖₂``.
* **FGSM** (L∞, Goodfellow et al. 2015): ``x + ε·sign(d)``.
  For both, ``d = −∇ₓ CE(f(x), t)`` (targeted) or ``+∇ₓ CE(f(x), y)`` (untargeted): one gradient
  serves every strength.
* **PGD** (L2 or L∞, Madry et al. 2018): ``steps`` signed (L∞) or L2-normalised steps of size
  ``α = step_ratio·ε/steps`` (default 2.5·ε/10), each followed by projection onto the ε-ball and
  [0, 1]; optional uniform random start. Every strength needs its own run, so the batch is
  repeated once per strength with a per-sample ε and all strengths run as one batch.

With ``random_start=False`` these match torchattacks' FGSM, PGD and PGDL2 (tested to 1e-6);
torchattacks computes the same directions from a mean-reduced loss, which only rescales them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MassifError, short

KINDS = ("fgm", "fgsm", "pgd")  # the ``name``s this class implements (the registry's labels
# for them: ``massif.attacks.ATTACKS``)
_DIV_EPS = 1e-10  # the same guard torchattacks uses when normalising by an L2 norm


def attack_direction(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool,
                     logits: torch.Tensor | None = None) -> torch.Tensor:
    """``-∇CE(t)`` (targeted) or ``+∇CE(y)``; ``logits`` may be given if already computed
    from ``x`` (which must then require grad)."""
    if logits is None:
        x = x.detach().requires_grad_(True)
        logits = model(x)
    loss = F.cross_entropy(logits, labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
    return -grad if targeted else grad


def _l2_unit(g: torch.Tensor) -> torch.Tensor:
    norms = g.flatten(1).norm(p=2, dim=1) + _DIV_EPS
    return g / norms.view(-1, *([1] * (g.ndim - 1)))


@dataclass(frozen=True)
class Attack:
    """An attack recipe; ``name`` in fgm, fgsm, pgd; ``norm`` in l2, linf."""

    name: str = "fgm"
    norm: str = "l2"
    targeted: bool = True
    steps: int = 10
    step_ratio: float = 2.5
    random_start: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.targeted, bool) or not isinstance(self.random_start, bool):
            raise MassifError("targeted and random_start must be True or False")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise MassifError(f"steps must be an integer, not {type(self.steps).__name__}")
        if (isinstance(self.step_ratio, bool) or not isinstance(self.step_ratio, (int, float))
                or not math.isfinite(self.step_ratio) or self.step_ratio <= 0):
            raise MassifError(f"step_ratio must be a positive number, not "
                              f"{short(self.step_ratio)}")
        if self.name not in KINDS:
            raise MassifError(f"unknown attack {self.name!r}; this class runs {', '.join(KINDS)}"
                              " (massif.make_attack takes every attack's name)")
        if self.norm not in ("l2", "linf"):
            raise MassifError(f"unknown norm {self.norm!r}; choose l2 or linf")
        if self.name == "fgm" and self.norm != "l2" or self.name == "fgsm" and self.norm != "linf":
            raise MassifError(f"{self.name} is defined for {'l2' if self.name == 'fgm' else 'linf'}"
                              " only")
        if self.steps < 1:
            raise MassifError("PGD needs at least one step")

    @property
    def single_gradient(self) -> bool:
        """True when one gradient at the clean image gives every strength (FGM, FGSM)."""
        return self.name in ("fgm", "fgsm")

    def step_direction(self, grad: torch.Tensor) -> torch.Tensor:
        return _l2_unit(grad) if self.norm == "l2" else grad.sign()

    def from_direction(self, x: torch.Tensor, direction: torch.Tensor,
                       strengths: Sequence[float]) -> torch.Tensor:
        """FGM/FGSM images for every strength from one raw direction: ``[K, B, C, H, W]``."""
        unit = self.step_direction(direction)
        eps = torch.as_tensor(list(strengths), dtype=x.dtype, device=x.device)
        return (x.unsqueeze(0) + eps.view(-1, 1, 1, 1, 1) * unit.unsqueeze(0)).clamp_(0, 1)

    def perturb(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                strengths: Sequence[float]) -> torch.Tensor:
        """Adversarial images ``[K, B, C, H, W]`` for strengths ``ε_1 … ε_K``."""
        x = x.detach()
        if self.single_gradient:
            direction = attack_direction(model, x, labels, self.targeted)
            return self.from_direction(x, direction, strengths)
        k, b = len(strengths), x.shape[0]
        eps = torch.as_tensor(list(strengths), dtype=x.dtype, device=x.device)
        eps = eps.repeat_interleave(b)  # [K·B]
        xs = x.repeat(k, 1, 1, 1)
        ys = labels.repeat(k)
        return self.pgd(model, xs, ys, eps).view(k, *x.shape)

    def pgd(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
            eps: torch.Tensor) -> torch.Tensor:
        """PGD with a per-sample ``eps: [B]``; rows with ε = 0 stay clean."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        eps_v = eps.view(shape)
        alpha = (self.step_ratio * eps / self.steps).view(shape)
        adv = x.clone()
        if self.random_start:
            if self.norm == "linf":
                adv = adv + torch.empty_like(adv).uniform_(-1, 1) * eps_v
            else:
                noise = torch.randn_like(adv)
                radius = torch.rand(x.shape[0], device=x.device, dtype=x.dtype).view(shape)
                adv = adv + _l2_unit(noise) * radius * eps_v
            adv = adv.clamp(0, 1)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            grad = attack_direction(model, adv, labels, self.targeted, logits=model(adv))
            adv = adv.detach() + alpha * self.step_direction(grad)
            delta = adv - x
            if self.norm == "linf":
                delta = torch.maximum(torch.minimum(delta, eps_v), -eps_v)
            else:
                norms = delta.flatten(1).norm(p=2, dim=1).view(shape)
                factor = torch.where(norms > 0, eps_v / norms, torch.zeros_like(norms))
                delta = delta * factor.clamp(max=1.0)
            adv = (x + delta).clamp(0, 1).detach()
        return adv

    def options(self) -> dict[str, float | int]:
        """The recipe beyond name, norm and direction, as ``graph.json`` keeps it (PGD's
        steps and step ratio; FGM and FGSM have none)."""
        return {"steps": self.steps, "step_ratio": self.step_ratio} if self.name == "pgd" else {}
