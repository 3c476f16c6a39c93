"""The bundled demo model: a small InceptionV1-style CNN for 28×28 grayscale images.

Its analysable layers carry the paper's names (``mixed3a`` … ``mixed5a``) so that what a user
learns on the demo reads the same on InceptionV1. Each mixed block is four parallel branches
(1×1; 1×1→3×3; 1×1→5×5; 3×3 max-pool→1×1), each ending in a ReLU, concatenated along channels,
as in GoogLeNet. It is trained with BatchNorm, which is then folded into the convolutions
(``fold_batchnorm``), so the shipped net is conv + bias + ReLU. The network takes images in
[0, 1]; the Fashion-MNIST normalisation is its first step, so attacks and pictures work on raw
pixels.

Shapes: ``[B, 1, 28, 28]`` → stem ``[B, 16, 14, 14]`` → mixed3a ``[B, 32, 14, 14]`` → mixed3b
``[B, 48, 14, 14]`` → pool → mixed4a/4b ``[B, 64, 7, 7]`` → pool → mixed5a ``[B, 96, 4, 4]`` →
global average → logits ``[B, 10]``. It runs fastest on CPU in ``channels_last`` memory
format, which ``models.load_model("bundled")`` applies.
"""

from __future__ import annotations

import torch
from torch import nn

FASHION_MEAN = 0.2860
FASHION_STD = 0.3530
LAYERS = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed5a"]


def _conv(cin: int, cout: int, k: int, batchnorm: bool = False) -> nn.Sequential:
    if batchnorm:  # training only: `fold_batchnorm` turns it into the shipped conv + bias
        return nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


class Mixed(nn.Module):
    """One inception block; ``out`` channels are split 3/8, 3/8, 1/8, 1/8 over the branches."""

    def __init__(self, cin: int, out: int, bn: bool = False) -> None:
        super().__init__()
        b1, b2, b3 = out * 3 // 8, out * 3 // 8, out // 8
        b4 = out - b1 - b2 - b3
        self.branch1x1 = _conv(cin, b1, 1, bn)
        self.branch3x3 = nn.Sequential(_conv(cin, b2 // 2, 1, bn), _conv(b2 // 2, b2, 3, bn))
        self.branch5x5 = nn.Sequential(_conv(cin, b3, 1, bn), _conv(b3, b3, 5, bn))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv(cin, b4, 1, bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], 1
        )


class FashionInception(nn.Module):
    """Small InceptionV1-style classifier; input ``[B, 1, 28, 28]`` in [0, 1], output logits."""

    def __init__(self, num_classes: int = 10, batchnorm: bool = False) -> None:
        super().__init__()
        bn = batchnorm
        self.register_buffer("mean", torch.tensor(FASHION_MEAN).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(FASHION_STD).view(1, 1, 1, 1))
        self.stem = nn.Sequential(_conv(1, 16, 3, bn), nn.MaxPool2d(2))
        self.mixed3a = Mixed(16, 32, bn)
        self.mixed3b = Mixed(32, 48, bn)
        self.pool3 = nn.MaxPool2d(2)
        self.mixed4a = Mixed(48, 64, bn)
        self.mixed4b = Mixed(64, 64, bn)
        self.pool4 = nn.MaxPool2d(2, ceil_mode=True)
        self.mixed5a = Mixed(64, 96, bn)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(96, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = self.stem(x)
        x = self.mixed3b(self.mixed3a(x))
        x = self.mixed4b(self.mixed4a(self.pool3(x)))
        x = self.mixed5a(self.pool4(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.dropout(x))


@torch.no_grad()
def fold_batchnorm(trained: FashionInception) -> FashionInception:
    """The shipped (BatchNorm-free) net computing exactly what ``trained`` computes in eval mode.

    Each ``conv → BN`` pair becomes one conv with ``w' = w·γ/σ`` and ``b' = β − μ·γ/σ``, where
    ``σ = sqrt(running_var + eps)``: half the operations at inference, the same function.
    """
    plain = FashionInception(num_classes=trained.fc.out_features, batchnorm=False)
    src = dict(trained.named_modules())
    for name, mod in plain.named_modules():
        if isinstance(mod, nn.Conv2d):
            conv, bn = src[name], src[name[: -len(".0")] + ".1"]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            mod.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            mod.bias.copy_(bn.bias - bn.running_mean * scale)
    plain.fc.load_state_dict(trained.fc.state_dict())
    return plain.eval()
