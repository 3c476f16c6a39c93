"""``bundled-robust``: the bundled network adversarially trained (``massif.bundled.train
--robust``), shipped beside the standard one, and what the comparison of the two shows."""

from __future__ import annotations

import pytest
import torch

import massif
from massif.attacks import Attack
from massif.datasets import FashionMNIST
from massif.models import ROBUST_WEIGHTS

N = 1000


@pytest.fixture(scope="module")
def models(bundled):
    return bundled, massif.load_model("bundled-robust")


def accuracy(model, x, y, eps: float) -> float:
    if eps:
        attack = Attack(name="pgd", norm="l2", targeted=False, steps=10)
        x = attack.pgd(model.module, x, y, torch.full((len(x),), eps))
    with torch.no_grad():
        return (model.module(x).argmax(1) == y).float().mean().item()


def test_the_robust_model_is_the_same_network_and_small_enough_to_ship(models):
    standard, robust = models
    assert robust.name == "bundled-robust"
    assert robust.layers == standard.layers and robust.class_names == standard.class_names
    assert robust.layer_channels == standard.layer_channels
    assert robust.fingerprint != standard.fingerprint
    assert ROBUST_WEIGHTS.stat().st_size < 5e6


def test_the_robust_model_resists_what_breaks_the_standard_one(models):
    """On the first 1,000 test images under PGD-L2 (10 steps) at ε = 1.5: the standard model
    falls, the robust one mostly holds, at some cost in clean accuracy (figures in README)."""
    standard, robust = models
    data = FashionMNIST("test")
    x, y = data.load(range(N)), data.labels[:N]
    assert accuracy(robust, x, y, 0) >= 0.75
    assert accuracy(standard, x, y, 0) > accuracy(robust, x, y, 0)
    assert accuracy(robust, x, y, 1.5) >= accuracy(standard, x, y, 1.5) + 0.3


def test_the_default_pair_needs_more_strength_against_the_robust_model(models):
    standard, robust = models
    kw = dict(benign="Sneaker", target="Sandal", attack="fgm", max_images=300, device="cpu")
    a, b = massif.analyze(standard, **kw), massif.analyze(robust, **kw)
    assert b.metrics.attack_success_rate[-1] < a.metrics.attack_success_rate[-1]
    c = massif.compare(a, b)
    assert not c.same_model and c.neurons == []  # different weights: different units
    assert c.b.asr == b.metrics.attack_success_rate[-1]
