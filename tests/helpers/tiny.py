"""Tiny models with hand-set weights, where the right graph is known exactly.

``planted_model``: images are 2 channels × 1 × 1 pixel, ``x = (x0, x1)`` in [0, 1]².

    l1 (1×1 conv + ReLU):  l1:0 = x0      (the benign feature)
                           l1:1 = x1      (the target feature)
                           l1:2 = 0.5     (a constant feature both classes use)
    l2 (1×1 conv + ReLU):  l2:i = l1:i    (identity, so edges are exact)
    logits: z_benign = l2:0 + l2:2,  z_target = l2:1 + 0.8·l2:2,  z_other = 0

Benign images are ``(1, 0)``. Attacked toward the target with enough strength they become
``(0, 1)`` (clipped). So, in each layer: channel 0 only the benign class drives (suppressed),
channel 1 only the attacked images drive toward the target (emphasized), channel 2 both (shared).
"""

from __future__ import annotations

import torch
from torch import nn

BENIGN, TARGET, OTHER = 0, 1, 2
CLASSES = ["benign", "target", "other"]


class Planted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
        self.l2 = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
        self.head = nn.Linear(3, 3)
        with torch.no_grad():
            w1 = torch.zeros(3, 2, 1, 1)
            w1[0, 0] = 1.0
            w1[1, 1] = 1.0
            self.l1[0].weight.copy_(w1)
            self.l1[0].bias.copy_(torch.tensor([0.0, 0.0, 0.5]))
            self.l2[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.l2[0].bias.zero_()
            self.head.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.8], [0, 0, 0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l2(self.l1(x)).flatten(1))


def planted_dataset(n: int = 6):
    from massif.datasets import TensorDataset

    images = torch.zeros(2 * n, 2, 1, 1)
    images[:n, 0] = 1.0  # benign images (1, 0)
    images[n:, 1] = 1.0  # target images (0, 1)
    labels = [BENIGN] * n + [TARGET] * n
    return TensorDataset(images, labels, CLASSES, name="planted")


class SmallConv(nn.Module):
    """A small random conv net on 1×8×8 images with two analysable layers (for oracles)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(5 * 4 * 4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(self.c1(x)).flatten(1))
