"""Narrow layers (issue 26, item 2): a layer with about as many units as nodes per layer takes
a third of its units, on a hand-weighted model where the right graph is known exactly."""

import pytest
import torch

import massif
from massif.analysis.graph import layer_nodes, random_masks
from massif.analysis.profile import NeuronProfile
from massif.datasets import TensorDataset
from tests.helpers.tiny import BENIGN, TARGET

CLASSES = ["benign", "target", "other"]


class Narrow(torch.nn.Module):
    """A narrow layer whose three units all matter to both classes, then a wide one.

    Images are 2 channels × 1 × 1 pixel, ``x = (x0, x1)``; benign images are ``(1, 0)``, and
    FGM toward the target at 3.5 takes them to ``(0, 1)`` (clipped).

        l1 (1×1 conv + ReLU, 3 units):   l1:0 = x0 + 0.1,  l1:1 = x1 + 0.1,  l1:2 = 0.5
        l2 (1×1 conv + ReLU, 24 units):  l2:i = l1:i for i < 3, the other 21 are 0
        logits: z_b = l2:0 + 0.2·l2:1 + s·l2:2,  z_t = 0.2·l2:0 + l2:1 + s·l2:2,  z_other = 0

    Every unit of ``l1`` has a positive importance toward the benign class on the clean images
    (1.1, 0.02, 0.5·s) and toward the target on the attacked ones (0.02, 1.1, 0.5·s): with 8
    nodes per layer both graphs would hold all three, all shared. Taking a third of the layer
    (one unit), the benign graph holds ``l1:0`` and, for ``s = 0.3``, the attacked graph
    ``l1:1``, the attack's pathway: suppressed and emphasized. With ``s = 5`` the constant
    unit tops both graphs, no unit is emphasized, and the graph must say why. ``l2`` has 24
    units, 3 times the nodes per layer: it keeps 8 (its three live units, all shared).
    """

    def __init__(self, s: float = 0.3) -> None:
        super().__init__()
        self.l1 = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.ReLU())
        self.l2 = torch.nn.Sequential(torch.nn.Conv2d(3, 24, 1), torch.nn.ReLU())
        self.head = torch.nn.Linear(24, 3)
        with torch.no_grad():
            w1 = torch.zeros(3, 2, 1, 1)
            w1[0, 0] = w1[1, 1] = 1.0
            self.l1[0].weight.copy_(w1)
            self.l1[0].bias.copy_(torch.tensor([0.1, 0.1, 0.5]))
            w2 = torch.zeros(24, 3, 1, 1)
            w2[:3, :, 0, 0] = torch.eye(3)
            self.l2[0].weight.copy_(w2)
            self.l2[0].bias.zero_()
            head = torch.zeros(3, 24)
            head[0, :3] = torch.tensor([1.0, 0.2, s])
            head[1, :3] = torch.tensor([0.2, 1.0, s])
            self.head.weight.copy_(head)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l2(self.l1(x)).flatten(1))


def narrow_data(n: int = 24) -> TensorDataset:
    images = torch.zeros(2 * n, 2, 1, 1)
    images[:n, 0] = 1.0  # benign (1, 0)
    images[n:, 1] = 1.0  # target (0, 1)
    return TensorDataset(images, [BENIGN] * n + [TARGET] * n, CLASSES, name="narrow")


def analyze(s: float, **options) -> massif.Graph:
    model = massif.load_model(Narrow(s), layers=["l1", "l2"], image_size=1, channels=2,
                              class_names=list(CLASSES))
    return massif.analyze(model, narrow_data(), benign="benign", target="target", attack="fgm",
                          max_strength=3.5, steps=4, device="cpu", **options)


@pytest.fixture(scope="module")
def graph():
    return analyze(0.3)


def test_the_narrow_layer_takes_a_third_and_finds_the_attack_pathway(graph):
    assert graph.params.nodes_per_layer == 8
    assert graph.params.layer_nodes == {"l1": 1}  # l2 (24 units) keeps 8
    groups = {n.id: n.group for n in graph.nodes}
    assert groups == {"l1:0": "suppressed", "l1:1": "emphasized",
                      "l2:0": "shared", "l2:1": "shared", "l2:2": "shared"}
    n0, n1 = graph.node("l1:0"), graph.node("l1:1")
    n2 = graph.node("l2:2")  # l1:2 is left out; l2:2 copies it, so its importance is l1:2's
    # every l1 unit matters to both classes: with 8 nodes all three would be in both graphs
    assert n0.importance_benign[0] == pytest.approx(1.1)
    assert n1.importance_benign[0] == pytest.approx(0.02)
    assert n2.importance_benign[0] == pytest.approx(0.15)
    assert n0.importance_target[-1] == pytest.approx(0.02)
    assert n1.importance_target[-1] == pytest.approx(1.1)
    assert n2.importance_target[-1] == pytest.approx(0.15)
    assert graph.metrics.attack_success_rate[-1] == 1.0


def test_its_emphasized_neuron_carries_the_attack(graph):
    f = graph.metrics.faithfulness
    assert f.n_masked == 1
    # without l1:1 the attacked (0, 1) gives z_b = 0.25 > z_t = 0.17: the attack stops, while
    # the clean (1, 0) stays benign (1.25 against 0.37)
    assert f.masked_emphasized_asr == 0.0 and f.clean_accuracy_emphasized == 1.0
    assert f.margin_unmasked == pytest.approx(0.80)
    assert f.margin_emphasized == pytest.approx(-0.08)
    # random draws take l1:0 (margin 1.25 - 0.37 = 0.88) or l1:2 (1.12 - 0.32 = 0.80)
    draws = random_masks({"l1": [1]}, {"l1": 3, "l2": 24}, f.random_draws)
    margins = [0.88 if d == {"l1": [0]} else 0.80 for d in draws]
    assert f.margin_random == pytest.approx(sum(margins) / len(margins))
    assert f.faithful is True
    assert not any("narrow" in w or "emphasized" in w for w in graph.warnings)


def test_the_graph_says_so(graph, tmp_path):
    assert "(narrow layers: the graphs took a third of their units, not 8: l1 1)" \
        in graph.summary()
    back = massif.Graph.load(graph.save(tmp_path / "graph.json"))
    assert back.params.layer_nodes == {"l1": 1} and back.params.nodes_for("l1") == 1
    assert back.params.nodes_for("l2") == 8
    wide = analyze(0.3, nodes_per_layer=1)  # 1 node is a third of 3 units: nothing narrowed
    assert wide.params.layer_nodes is None
    assert "layer_nodes" not in wide.to_json()
    assert "narrow layers" not in wide.summary()


def test_a_warning_says_why_it_cannot():
    g = analyze(5.0)  # the constant unit tops both graphs of l1
    assert g.params.layer_nodes == {"l1": 1}
    assert [n.group for n in g.nodes] == ["shared"] * 4
    assert g.warnings[0].startswith("no neuron is emphasized: the benign and the attacked "
                                    "graphs took the same neurons in every layer")
    assert "l1 (3 units, 1)" in g.warnings[0] and "--layers" in g.warnings[0]


def test_layer_nodes_rule():
    """A layer narrower than 3 nodes per layer takes a third of its units only where more
    than a third of them matter to both graphs."""
    def profile(benign: list[float], target: list[float]) -> NeuronProfile:
        b, t = torch.tensor([benign], dtype=torch.float64), torch.tensor([target],
                                                                        dtype=torch.float64)
        return NeuronProfile(layers=["a"], strengths=[0.0], importance_benign={"a": b},
                             importance_target={"a": t})

    assert layer_nodes(profile([1] * 6, [1] * 6), 8) == {"a": 2}  # CIFAR's relu1 at 8
    assert layer_nodes(profile([1] * 16, [1] * 16), 8) == {"a": 5}  # relu2
    assert layer_nodes(profile([1] * 2, [1] * 2), 8) == {"a": 1}
    assert layer_nodes(profile([1] * 24, [1] * 24), 8) == {"a": 8}  # 3N units: wide
    assert layer_nodes(profile([1] * 6, [1] * 6), 2) == {"a": 2}
    # two of six matter to both (the rest to one class each): the graphs part already
    assert layer_nodes(profile([1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]), 8) == {"a": 8}
    assert layer_nodes(profile([1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]), 8) == {"a": 2}
