"""The batch size an analysis takes without ``batch_size`` (docs/scale.md, Memory): the largest
that fits a budget (1.5 GB on the CPU, or ``MASSIF_MEMORY_BUDGET`` GB), one image costing
``4 × (its leaf modules' outputs) + (strengths + 3) × (its input)``, at most 256 on the CPU.
Counted by hand on a small net, seen in the batches an analysis then runs, and the figures the
docs give for the bundled model and googlenet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import massif
from massif.errors import MassifError
from massif.request import AnalysisRequest

GB = 2**30


def net_and_bytes(side: int) -> tuple[nn.Module, int]:
    """A small net on 1×side×side images and the bytes one image costs by the docs' rule, with
    8 strengths: its leaves output 4 maps (conv, then ReLU) of side² floats, 4 + 4 floats (pool,
    flatten) and 3 logits, all float32."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    leaves = 4 * (2 * 4 * side * side + 4 + 4 + 3)
    return net, 4 * leaves + (8 + 3) * 4 * side * side


def request(net: nn.Module, side: int, **fields) -> AnalysisRequest:
    model = massif.load_model(net, image_size=side, channels=1, class_names=["a", "b", "c"],
                              layers=["0"])
    data = massif.TensorDataset(torch.rand(30, 1, side, side), [0] * 10 + [1] * 10 + [2] * 10,
                                ["a", "b", "c"], name=f"noise{side}")
    return AnalysisRequest(model=model, data=data, benign="a", target="b", device="cpu",
                           **fields)


def test_the_cpu_budget_is_1_5_gb(monkeypatch):
    monkeypatch.delenv("MASSIF_MEMORY_BUDGET", raising=False)
    net, per_image = net_and_bytes(256)
    assert request(net, 256).resolve().batch_size == int(1.5 * GB) // per_image == 142
    net, per_image = net_and_bytes(8)
    assert int(1.5 * GB) // per_image > 256
    assert request(net, 8).resolve().batch_size == 256  # the CPU's most


def test_massif_memory_budget_sizes_the_batches_an_analysis_runs(monkeypatch):
    net, per_image = net_and_bytes(8)
    monkeypatch.setenv("MASSIF_MEMORY_BUDGET", "0.00005")
    assert int(0.00005 * GB) // per_image == 4
    req = request(net, 8)
    assert req.resolve().batch_size == 4
    seen: list[tuple[str, int, int]] = []
    massif.analyze(req, progress=lambda *a: seen.append(a))
    profile = [done for stage, done, _ in seen if stage == "profile"]
    assert profile == [0, 4, 8, 10]  # the class's 10 images, 4 at a time
    # an explicit batch size wins over the budget
    seen.clear()
    massif.analyze(request(net, 8, batch_size=3), progress=lambda *a: seen.append(a))
    assert [done for stage, done, _ in seen if stage == "profile"] == [0, 3, 6, 9, 10]


@pytest.mark.parametrize("value", ["lots", "0", "-2", "nan"])
def test_a_memory_budget_that_is_no_amount_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("MASSIF_MEMORY_BUDGET", value)
    net, _ = net_and_bytes(8)
    with pytest.raises(MassifError, match="MASSIF_MEMORY_BUDGET must be a positive number"):
        _ = request(net, 8).resolve().batch_size


def test_the_docs_figures_for_the_bundled_model_and_googlenet(monkeypatch):
    """docs/scale.md: the bundled model gets 256, googlenet at 224 px on the CPU 12."""
    monkeypatch.delenv("MASSIF_MEMORY_BUDGET", raising=False)
    bundled = AnalysisRequest(benign="Sneaker", target="Sandal", device="cpu").resolve()
    assert bundled.batch_size == 256
    googlenet = massif.load_model("torchvision:googlenet", weights="none")
    data = massif.TensorDataset(torch.rand(2, 3, 224, 224), [0, 1], googlenet.class_names,
                                name="two")
    req = AnalysisRequest(model=googlenet, data=data, benign=0, target=1, device="cpu")
    assert req.resolve().batch_size == 12
