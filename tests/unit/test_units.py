"""Units beyond convolution channels (``units.py``): the layout is read from how an output was
made, never from its sizes, and the planted model gives the same graph in every layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import massif
from massif import MassifError
from massif.hooks import mask, record
from massif.units import Units, parse_layer
from tests.helpers.layouts import PlantedChannelsLast, PlantedTokens
from tests.helpers.tiny import Planted, planted_dataset


def analyze(net: nn.Module, layers: list[str]):
    data = planted_dataset()
    data.images[:6, 1] = 0.2  # as in test_graph_truth: the target feature is alive
    model = massif.load_model(net, layers=layers, image_size=1, channels=2,
                              class_names=data.class_names)
    graph = massif.analyze(model, data, benign="benign", target="target", attack="fgm",
                           max_strength=3.5, steps=8, device="cpu")
    return model, graph


@pytest.fixture(scope="module")
def planted():
    return analyze(Planted(), ["l1", "l2"])[1]


def same_graph(a, b) -> None:
    da, db = a.model_dump(), b.model_dump()
    for d in (da, db):
        d.pop("model")
    assert [n["id"] for n in da["nodes"]] == [n["id"] for n in db["nodes"]]
    for na, nb in zip(da["nodes"], db["nodes"]):
        assert na["group"] == nb["group"], na["id"]
        for key in ("importance_benign", "importance_target", "activation"):
            assert na[key] == pytest.approx(nb[key], abs=1e-6), (na["id"], key)
    assert [(e["source"], e["target"]) for e in da["edges"]] == \
        [(e["source"], e["target"]) for e in db["edges"]]
    for ea, eb in zip(da["edges"], db["edges"]):
        assert ea["influence_benign"] == pytest.approx(eb["influence_benign"], abs=1e-6)
        assert ea["influence_attacked"] == pytest.approx(eb["influence_attacked"], abs=1e-6)
    assert da["metrics"]["attack_success_rate"] == db["metrics"]["attack_success_rate"]


def test_a_channels_last_model_gives_the_planted_graph(planted):
    model, graph = analyze(PlantedChannelsLast(), ["l1", "l2"])
    assert {lay: (u.layout, u.count) for lay, u in model.units.items()} == \
        {"l1": ("channels_last", 3), "l2": ("channels_last", 3)}
    same_graph(graph, planted)


def test_a_token_model_gives_the_planted_graph_with_its_class_token_apart(planted):
    model, graph = analyze(PlantedTokens(), ["l1@tokens+1", "l2@tokens+1"])
    assert {lay: (u.layout, u.count, u.prefix) for lay, u in model.units.items()} == \
        {"l1": ("tokens", 3, 1), "l2": ("tokens", 3, 1)}
    same_graph(graph, planted)
    # Read without the class token apart, the summaries of units 0 and 1 are the class
    # token's 5, whatever the image
    _, blind = analyze(PlantedTokens(), ["l1", "l2"])
    for nid in ("l1:0", "l1:1", "l2:0", "l2:1"):
        assert blind.node(nid).activation == pytest.approx([5.0] * 8)


def test_the_layout_is_read_from_how_the_output_was_made():
    model = massif.load_model(PlantedTokens(), image_size=1, channels=2)
    assert {lay: u.layout for lay, u in model.units.items()} == \
        {"l1": "tokens", "l2": "tokens"}
    model = massif.load_model(PlantedChannelsLast(), image_size=1, channels=2)
    assert {lay: u.layout for lay, u in model.units.items()} == \
        {"l1": "channels_last", "l2": "channels_last"}


class Square(nn.Module):
    """7×7×7 maps: sizes say nothing. ``a`` is a convolution's map (units on axis 1), ``b``
    its permute (units last), ``c`` a reshape of a flat vector (nothing says)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 7, 1)
        self.b = nn.Identity()
        self.fc = nn.Linear(7, 343)
        self.c = nn.Identity()
        self.head = nn.Linear(343 * 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = nn.functional.interpolate(self.a(x), size=(7, 7))
        b = self.b(a.permute(0, 2, 3, 1))
        c = self.c(self.fc(b.mean((1, 2))).view(-1, 7, 7, 7))
        return self.head(torch.cat([b.flatten(1), c.flatten(1)], 1))


class ClassToken(nn.Module):
    """A ViT's residual stream: a class token joined before the patch tokens on axis 1 (the
    tokens' axis, as Inception joins channels on it), then a block whose linear layer makes
    the features on the last axis. Its block output's units are the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.fc = nn.Linear(8, 8)
        self.block = nn.Identity()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(x), -1, -1), t], 1)
        t = self.block(t + self.fc(t))
        return self.head(t[:, 0])


def test_a_class_token_joined_on_axis_one_is_no_channel_axis():
    model = massif.load_model(ClassToken(), image_size=8, channels=3, layers="block@tokens+1")
    assert model.units["block"] == Units("tokens", 8, 1, (5,))


def test_equal_sizes_are_told_apart_and_an_unknown_layout_is_one_error():
    model = massif.load_model(Square(), layers=["a", "b"], image_size=7, channels=1)
    assert {lay: (u.layout, u.count, u.grid) for lay, u in model.units.items()} == \
        {"a": ("channels", 7, (7, 7)), "b": ("channels_last", 7, (7, 7))}
    with pytest.raises(MassifError, match=r"layer c outputs shape \(1, 7, 7, 7\) and nothing "
                                          r"says which axis holds its units; name its layout: "
                                          r"--layers c@channels"):
        massif.load_model(Square(), layers=["c"], image_size=7, channels=1)
    ok = massif.load_model(Square(), layers=["c@channels_last"], image_size=7, channels=1)
    assert ok.units["c"].layout == "channels_last" and ok.given_layouts == {"c": "channels_last"}
    with pytest.raises(MassifError, match="layer b outputs shape .* with its units on axis 3, "
                                          "not a channels layout"):
        massif.load_model(Square(), layers=["b@channels"], image_size=7, channels=1)


@pytest.mark.parametrize(("spec", "message"), [
    ("l1@rows", r"the layout after @ is one of channels, channels_last, tokens or tokens\+N"),
    ("l1@channels+1", "the layout after @ is one of"),
    ("l1@tokens+x", "the layout after @ is one of"),
])
def test_a_bad_layout_is_one_error(spec, message):
    with pytest.raises(MassifError, match=message):
        parse_layer(spec)


def test_masks_and_records_take_the_units_axis():
    """A mask deletes a token unit at every token, the class token too; ``record`` hands the
    canonical view ``[B, units, positions]`` and the model goes on from it."""
    net = PlantedTokens().eval()
    units = {"l1": Units("tokens", 3, 1, (2,))}
    x = torch.tensor([[[[1.0]], [[0.2]]]], requires_grad=True)
    with record(net, {"l1": "l1"}, units=units) as acts:
        z = net(x)
    assert acts["l1"].shape == (1, 3, 2)
    assert acts["l1"][0, :, 1].tolist() == pytest.approx([1.0, 0.2, 0.5])
    # z_benign = l2:0 + l2:2 of the patch token: the gradient at the view is the model's own
    (g,) = torch.autograd.grad(z[0, 0], acts["l1"])
    assert g[0].tolist() == [[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
    with mask(net, {"l1": [0]}, units={"l1": units["l1"]}), \
            record(net, {"l1": "l1"}, units=units) as acts:
        net(x)
        seen = acts["l1"].detach().clone()
    assert seen[0, 0].tolist() == [0.0, 0.0]  # unit 0, both tokens
    assert seen[0, 1:].flatten().tolist() == pytest.approx([5.0, 0.2, 0.5, 0.5])
