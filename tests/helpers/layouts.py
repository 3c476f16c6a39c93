"""The planted model (tiny.py) in the two other layouts MASSIF knows: the same numbers, with
units on the last axis of a map (channels-last) or of a token sequence (a ViT-like model).

Each computes exactly what ``Planted`` computes, so its graph must be ``Planted``'s, number for
number, when its units are read on the right axis.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.helpers.tiny import Planted


def _linear(conv: nn.Conv2d) -> nn.Linear:
    """The 1×1 convolution as a linear layer on the last axis."""
    lin = nn.Linear(conv.in_channels, conv.out_channels)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.flatten(1))
        lin.bias.copy_(conv.bias)
    return lin


class PlantedChannelsLast(nn.Module):
    """``[B, 2, 1, 1]`` images, permuted to ``[B, 1, 1, 2]``; ``l1``, ``l2``: linear layers + ReLU
    on the last axis, outputs ``[B, 1, 1, 3]`` (as a Swin stage's)."""

    def __init__(self) -> None:
        super().__init__()
        p = Planted()
        self.l1 = nn.Sequential(_linear(p.l1[0]), nn.ReLU())
        self.l2 = nn.Sequential(_linear(p.l2[0]), nn.ReLU())
        self.head = p.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l2(self.l1(x.permute(0, 2, 3, 1))).flatten(1))


class PlantedTokens(nn.Module):
    """``[B, 2, 1, 1]`` images as a sequence of two tokens ``[B, 2, 2]``: a class token (a
    constant, ``(5, 5)``) and the image's one patch; ``l1``, ``l2``: linear layers + ReLU on
    every token (as a ViT's MLP hidden units); the head reads the patch token. The class
    token's large values sit in units 0 and 1: a summary that took it in would read 5 there."""

    def __init__(self) -> None:
        super().__init__()
        p = Planted()
        self.register_buffer("cls", torch.full((1, 1, 2), 5.0))
        self.l1 = nn.Sequential(_linear(p.l1[0]), nn.ReLU())
        self.l2 = nn.Sequential(_linear(p.l2[0]), nn.ReLU())
        self.head = p.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch = x.flatten(2).transpose(1, 2)  # [B, 1, 2]
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), patch], 1)  # [B, 2, 2]
        return self.head(self.l2(self.l1(tokens))[:, 1])
