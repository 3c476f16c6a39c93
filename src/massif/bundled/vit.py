"""The bundled vision transformer: a small ViT for 28×28 grayscale images (``bundled-vit``).

The transformer beside the bundled CNN, trained on the same Fashion-MNIST with the same recipe
(``python -m massif.bundled.train --vit``), so the same pair can be compared across the two
families (``massif compare``). Its neurons are the MLP hidden units of each block after the GELU
(``mlp1`` … ``mlp4``, 128 units each): the units a feature visualization can read, as a CNN's
channels are.

Shapes: ``[B, 1, 28, 28]`` → 4×4 patches, a linear embedding (a convolution of stride 4) → 49
patch tokens ``[B, 49, 64]`` + a class token first → 4 pre-norm blocks (4 heads of attention,
MLP 64 → 128 → 64) ``[B, 50, 64]`` → layer norm → the class token → logits ``[B, 10]``. The
network takes images in [0, 1]; the Fashion-MNIST normalisation is its first step.
"""

from __future__ import annotations

import torch
from torch import nn

from massif.bundled.net import FASHION_MEAN, FASHION_STD

LAYERS = {f"mlp{i + 1}": f"blocks.{i}.mlp.act" for i in range(4)}  # name → module path
PATCH, DIM, DEPTH, HEADS, HIDDEN = 4, 64, 4, 4, 128


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # its output: the layer's units
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class FashionViT(nn.Module):
    """Small ViT classifier; input ``[B, 1, 28, 28]`` in [0, 1], output logits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(FASHION_MEAN).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(FASHION_STD).view(1, 1, 1, 1))
        patches = (28 // PATCH) ** 2
        self.patch = nn.Conv2d(1, DIM, PATCH, stride=PATCH)
        self.cls = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos = nn.Parameter(torch.randn(1, patches + 1, DIM) * 0.02)
        self.blocks = nn.Sequential(*(Block(DIM, HEADS, HIDDEN) for _ in range(DEPTH)))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        t = self.patch(x).flatten(2).transpose(1, 2)  # [B, 49, DIM]
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
        t = self.norm(self.blocks(t))
        return self.head(t[:, 0])
