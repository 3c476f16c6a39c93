"""CW-L2: Carlini & Wagner's L2 attack, one strength per constant ``c``.

Paper: N. Carlini, D. Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P
2017 (arXiv:1608.04644). Norm: L2. Reference implementation: torchattacks' ``CW`` (tested
equal in ``tests/unit/test_attacks.py``).

CW is not an ε-ball attack: it finds a small perturbation by minimising, over ``w`` with
``x' = ½(tanh w + 1)`` (so ``x'`` stays in [0, 1]),

    ‖x' − x‖₂² + c · f(x'),   f(x') = max(max_{i≠t} Z(x')_i − Z(x')_t, −κ)   (targeted, t),
                              f(x') = max(Z(x')_y − max_{i≠y} Z(x')_i, −κ)   (untargeted, y),

with Adam (``learning_rate``) for ``steps`` steps from ``x`` itself, and keeps, per image, the
smallest-L2 iterate that succeeds (the image itself when none does). **A MASSIF strength is the
constant c** (``ε = c``): at ``c = 0`` nothing moves; a larger ``c`` weighs success more
against the size of the change, so the ASR grows with it, but the perturbation's L2 size is
whatever the optimisation finds (no bound; ``Editor.image`` shows it). The paper's binary
search over c is not run: the strengths *are* the c values.

Defaults: ``steps=50``, ``learning_rate=0.01``, ``kappa=0`` (torchattacks'); the default
largest strength is c = 1 (``massif.attacks.ATTACKS``; torchattacks' default c): on the bundled
model's Sneaker → Sandal, 48 images, c = 0.1 gives ASR 54% at a median L2 size of 0.24, c = 0.3
96% at 0.61, c = 1 98% at 0.78 (CPU, 50
steps, learning rate 0.01).

Where ours differs from torchattacks 3.5.1, on purpose:

1. The largest other logit is the largest of the other logits; torchattacks takes the largest
   of ``(1 − onehot)·Z``, which reads 0 when every other logit is negative (and ``Z_t`` as 0
   when it is negative). Equal whenever the logits are positive, as in the test.
2. Pixels at exactly 0 or 1 start at ``w = atanh(±(1 − 1e-6))`` (as Carlini's own code's
   ``arctanh(0.999999·…)``) instead of ``±∞``, where torchattacks' gradient is 0 for ever (on
   Fashion-MNIST most pixels are 0, and it can never touch them; here they move, if slowly:
   their gradient is small). Equal for images inside (0, 1).
3. Its early stop (every ``steps // 10`` steps, stop when the cost rose) is per image, not on
   the batch's summed cost, so an image's result does not depend on the batch it is in. Equal
   for one image at a time.

Shapes: ``perturb(model, x [B, C, H, W] in [0, 1], labels [B], strengths [K])`` →
``[K, B, C, H, W]``; all strengths run as one batch of ``K·B`` images with a per-image c.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import MassifError, short

_EDGE = 1e-6  # how far inside (-1, 1) the tanh space starts for pixels at 0 or 1


@dataclass(frozen=True)
class CW:
    """CW-L2 (module docstring): strengths are the constant ``c``."""

    name: str = "cw"
    norm: str = "l2"
    targeted: bool = True
    steps: int = 50
    learning_rate: float = 0.01
    kappa: float = 0.0

    def __post_init__(self) -> None:
        if self.name != "cw" or self.norm != "l2":
            raise MassifError("CW is the L2 attack named cw")
        if not isinstance(self.targeted, bool):
            raise MassifError("targeted must be True or False")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise MassifError(f"steps must be a whole number ≥ 1, not {short(self.steps)}")
        for field, low in (("learning_rate", 0.0), ("kappa", None)):
            v = getattr(self, field)
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or (low is not None and v <= low) or (low is None and v < 0)):
                raise MassifError(f"{field} must be a {'positive' if low is not None else '≥ 0'}"
                                  f" number, not {short(v)}")

    @property
    def single_gradient(self) -> bool:
        return False

    def options(self) -> dict[str, float | int]:
        """The recipe as ``graph.json`` keeps it."""
        return {"steps": self.steps, "learning_rate": self.learning_rate, "kappa": self.kappa}

    def perturb(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                strengths: Sequence[float]) -> torch.Tensor:
        """Adversarial images ``[K, B, C, H, W]``, one row per constant ``c`` in ``strengths``."""
        x = x.detach()
        k, b = len(strengths), x.shape[0]
        c = torch.as_tensor(list(strengths), dtype=x.dtype, device=x.device).repeat_interleave(b)
        return self.run(model, x.repeat(k, 1, 1, 1), labels.repeat(k), c).view(k, *x.shape)

    def margin(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``f`` of the module docstring, per image: ``[B]``."""
        own = logits.gather(1, labels[:, None])[:, 0]
        others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
        gap = others - own if self.targeted else own - others
        return gap.clamp(min=-self.kappa)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
            c: torch.Tensor) -> torch.Tensor:
        """CW on ``x: [B, ...]`` with a per-image constant ``c: [B]``."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        u = (2 * x - 1).clamp(-1 + _EDGE, 1 - _EDGE)
        w = (0.5 * torch.log((1 + u) / (1 - u))).detach().requires_grad_(True)
        best = x.clone()
        best_l2 = torch.full((x.shape[0],), 1e10, dtype=x.dtype, device=x.device)
        previous = torch.full_like(best_l2, 1e10)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        optimizer = torch.optim.Adam([w], lr=self.learning_rate)
        check_every = max(self.steps // 10, 1)
        for step in range(self.steps):
            adv = 0.5 * (torch.tanh(w) + 1)
            l2 = (adv - x).pow(2).flatten(1).sum(1)
            logits = model(adv)
            cost = l2 + c * self.margin(logits, labels)
            optimizer.zero_grad()
            cost.sum().backward()
            optimizer.step()
            with torch.no_grad():
                pred = logits.argmax(1)
                hit = pred == labels if self.targeted else pred != labels
                better = hit & (best_l2 > l2) & active
                best_l2 = torch.where(better, l2, best_l2)
                best = torch.where(better.view(shape), adv, best)
                if step % check_every == 0:
                    active &= ~(cost > previous)
                    previous = torch.where(active, cost, previous)
                    if not bool(active.any()):
                        break
        return best.detach()
