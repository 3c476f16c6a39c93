"""Tiny models with hand-set weights, where the right graph is known exactly.

``Planted`` (``planted_model()`` loads it in MASSIF, ``planted_dataset``/``planted_data`` give
its images): images are 2 channels × 1 × 1 pixel, ``x = (x0, x1)`` in [0, 1]².

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


def planted_data(n: int = 6):
    """``planted_dataset`` with the benign images at ``(1, 0.2)``: the target feature is alive
    on them, so it has an importance and edges before the attack too."""
    data = planted_dataset(n)
    data.images[:n, 1] = 0.2
    return data


def planted_model():
    """``Planted`` as MASSIF loads it: layers ``l1`` and ``l2``, 2×1×1 images, ``CLASSES``."""
    import massif

    return massif.load_model(Planted(), layers=["l1", "l2"], image_size=1, channels=2,
                             class_names=list(CLASSES))


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


class Block(nn.Module):
    """An inception-style block: three branches concatenated (2 + 3 + 2 channels); with
    ``twisted``, the second branch passes through a ReLU outside its module before the cat."""

    def __init__(self, cin: int, twisted: bool = False) -> None:
        super().__init__()
        self.twisted = twisted
        self.one = nn.Conv2d(cin, 2, 1)
        self.two = nn.Sequential(nn.Conv2d(cin, 3, 1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        two = self.two(x)
        return torch.cat([self.one(x), two.relu() if self.twisted else two, self.pool(x)], 1)


class Branchy(nn.Module):
    """A random net on 1×8×8 images: ``c1`` (plain conv), ``b1`` and ``b2`` (``Block``s, the
    second ``twisted``), a max pool between them, and a linear head."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.b1 = Block(4)
        self.b2 = Block(7, twisted=True)
        self.fc = nn.Linear(7 * 4 * 4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(self.b1(self.c1(x)), 2)
        return self.fc(self.b2(h).flatten(1))


class Ladder(nn.Module):
    """Where attacked images cross to the target class, known by construction.

    Images are 2 channels × 1 × 1 pixel, ``x = (x0, x1)``. Four 1×1 conv layers (no bias, no
    ReLU) pass both features on, each weighing the target feature ``x1`` four times more than
    the layer before: ``l_k = (x0, w_k·x1)`` with ``w = 1/4, 1, 4, 16``; the logits are ``l4``
    (class 0 benign, class 1 target). Benign images are ``(a, 0)``, target images ``(0, 1)``, so
    the class means of every layer point along ``(1, 0)`` and ``(0, 1)``, and an image is closer
    (in angle) to the target's mean at layer ``k`` exactly when ``w_k·x1 > x0``. Targeted FGSM
    (L∞) at strength ε moves ``(a, 0)`` to ``(a − ε, ε)`` (the gradient's signs are
    ``(−1, +1)``), so the target wins at layer ``k`` when ``ε > a / (1 + w_k)``, and, ``w``
    growing, stays winning above it: the crossing layer is the first such ``k``.
    """

    WEIGHTS = (0.25, 1.0, 4.0, 16.0)

    def __init__(self) -> None:
        super().__init__()
        before = 1.0
        for i, w in enumerate(self.WEIGHTS, 1):
            conv = nn.Conv2d(2, 2, 1, bias=False)
            with torch.no_grad():
                conv.weight.copy_(torch.diag(torch.tensor([1.0, w / before])).view(2, 2, 1, 1))
            self.add_module(f"l{i}", conv)
            before = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l4(self.l3(self.l2(self.l1(x)))).flatten(1)


def ladder_dataset(benign_x0: list[float], n_target: int = 3):
    """Benign images ``(a, 0)`` for each ``a`` given, then ``n_target`` target images ``(0, 1)``."""
    from massif.datasets import TensorDataset

    n = len(benign_x0)
    images = torch.zeros(n + n_target, 2, 1, 1)
    images[:n, 0, 0, 0] = torch.tensor(benign_x0)
    images[n:, 1] = 1.0
    return TensorDataset(images, [0] * n + [1] * n_target, ["benign", "target"], name="ladder")
