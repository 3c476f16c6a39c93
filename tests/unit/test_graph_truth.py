"""The engine on a hand-weighted model where every number is known (see tiny.py)."""

import math

import pytest
import torch

import massif
from massif.analysis.graph import flip_index, random_masks
from massif.datasets import TensorDataset
from massif.hooks import mask
from massif.schemas import Faithfulness, faithful
from tests.helpers.tiny import BENIGN, TARGET, Planted, planted_data, planted_model

STRENGTHS = [3.5 * i / 7 for i in range(8)]


def expected_path():
    """Closed form of the planted model under targeted FGM from x = (1, 0.2)."""
    z = torch.tensor([1.5, 0.6, 0.0])  # logits at (1, 0.2)
    p = z.softmax(0)
    d = torch.tensor([-float(p[0]), 1 - float(p[1])])  # -grad CE(z, target) wrt (x0, x1)
    u = d / d.norm()
    xs = [((1 + e * u[0]).clamp(0, 1).item(), (0.2 + e * u[1]).clamp(0, 1).item())
          for e in STRENGTHS]
    return xs


@pytest.fixture(scope="module")
def graph():
    return massif.analyze(planted_model(), planted_data(), benign="benign", target="target",
                          attack="fgm", max_strength=3.5, steps=8, device="cpu")


def test_groups_are_the_planted_ones(graph):
    groups = {n.id: n.group for n in graph.nodes}
    for layer in ("l1", "l2"):
        assert groups[f"{layer}:0"] == "suppressed"
        assert groups[f"{layer}:1"] == "emphasized"
        assert groups[f"{layer}:2"] == "shared"
    assert len(graph.nodes) == 6


def test_importance_curves_are_exact(graph):
    xs = expected_path()
    n0, n1, n2 = (graph.node(f"l1:{i}") for i in range(3))
    # toward benign: z_b = l1:0 + l1:2, so I^b(k) = x0(k) for l1:0 and 0.5 for l1:2
    assert n0.importance_benign == pytest.approx([x0 for x0, _ in xs], abs=1e-6)
    assert n2.importance_benign == pytest.approx([0.5] * 8, abs=1e-6)
    # toward target: z_t = l1:1 + 0.8 l1:2
    assert n1.importance_target == pytest.approx([x1 for _, x1 in xs], abs=1e-6)
    assert n2.importance_target == pytest.approx([0.4] * 8, abs=1e-6)
    assert n1.activation == pytest.approx([x1 for _, x1 in xs], abs=1e-6)


def test_warnings_say_when_a_graph_means_little(graph):
    from massif.analysis.pipeline import graph_warnings

    # the planted class is 6 images, all right, all attacked at ε_max: only the count is low
    assert len(graph.warnings) == 1 and "only 6 images" in graph.warnings[0]
    assert graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5) == []
    low = graph_warnings(0.3, 0.05, 300, "tench", 3.5)
    assert len(low) == 2 and "30% of the tench images" in low[0] and "ε = 3.5" in low[1]
    # the faithfulness check: the emphasized neurons masked must lower the target margin on
    # the attacked images, and more than random ones
    def check(emph: float, rnd: float) -> Faithfulness:
        margins = (4.5, emph, rnd)
        return Faithfulness(masked_emphasized_asr=0.0, masked_random_asr=0.87, n_masked=33,
                            random_draws=5, clean_accuracy_emphasized=0.0,
                            clean_accuracy_random=0.31, margin_unmasked=4.5,
                            margin_emphasized=emph, margin_random=rnd,
                            faithful=faithful(33, 979, margins))
    assert graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, check(-1.4, 4.9)) == []
    (unfaithful,) = graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, check(4.0, 2.0))
    assert unfaithful.startswith("masking the 33 emphasized neurons lowers the attacked images' "
                                 "target margin by 0.50, as many random ones by 2.50")
    assert "(ASR 0% at clean accuracy 0% against 87% at 31%" in unfaithful
    # a mask that raises the margin is no evidence, even where random ones raise it more
    assert graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, check(5.0, 6.0)) != []
    assert graph_warnings(0.97, 0.05, 979, "Sneaker", 3.5, check(4.0, 2.0))[0].startswith(
        "the attack succeeds on only 5%")  # nothing to check when the attack hardly works
    assert "warning: only 6 images" in graph.summary()


def test_attack_success_rate_and_accuracy_are_exact(graph):
    expected = [1.0 if x1 + 0.4 > x0 + 0.5 else 0.0 for x0, x1 in expected_path()]
    assert graph.metrics.attack_success_rate == pytest.approx(expected)
    assert graph.metrics.clean_accuracy == 1.0
    assert graph.metrics.attack_success_rate[-1] == 1.0


def test_vulnerability_follows_the_half_move_rule(graph):
    xs = expected_path()
    x0s, x1s = [x[0] for x in xs], [x[1] for x in xs]
    # emphasized: first k >= 1 with x1(k) - x1(0) >= (x1(K) - x1(0)) / 2
    k_e = next(k for k in range(1, 8) if x1s[k] - x1s[0] >= 0.5 * (x1s[-1] - x1s[0]))
    k_s = next(k for k in range(1, 8) if x0s[0] - x0s[k] >= 0.5 * (x0s[0] - x0s[-1]))
    emph, supp = graph.node("l1:1"), graph.node("l1:0")
    assert emph.flip_strength == pytest.approx(STRENGTHS[k_e])
    assert emph.vulnerability == pytest.approx(1 - (k_e - 1) / 7)
    assert supp.flip_strength == pytest.approx(STRENGTHS[k_s])
    assert supp.vulnerability == pytest.approx(1 - (k_s - 1) / 7)
    shared = graph.node("l1:2")
    assert shared.vulnerability is None and shared.flip_strength is None


def test_edges_have_exact_influence(graph):
    edges = {(e.source, e.target): (e.influence_benign, e.influence_attacked)
             for e in graph.edges}
    assert set(edges) == {("l1:0", "l2:0"), ("l1:1", "l2:1"), ("l1:2", "l2:2")}
    assert edges[("l1:0", "l2:0")] == pytest.approx((1.0, 0.0))
    assert edges[("l1:1", "l2:1")] == pytest.approx((0.2, 1.0))
    assert edges[("l1:2", "l2:2")] == pytest.approx((0.5, 0.5))


def test_divergence_and_faithfulness(graph):
    # l1 and l2 both see s = (x0, x1, 0.5); the class means are (1, 0.2, 0.5) and (0, 1, 0.5).
    cos = torch.nn.functional.cosine_similarity
    mean_b, mean_t = torch.tensor([1.0, 0.2, 0.5]), torch.tensor([0.0, 1.0, 0.5])
    closer = [bool(cos(torch.tensor([x0, x1, 0.5]), mean_t, 0) > cos(torch.tensor([x0, x1, 0.5]),
                                                                    mean_b, 0))
              for x0, x1 in expected_path()]
    assert closer[0] is False and closer[-1] is True
    assert graph.metrics.divergence.crossed == [[1.0, 1.0] if c else [0.0, 0.0] for c in closer]
    assert graph.metrics.divergence_layer == "l1"  # every image that crosses crosses at l1
    f = graph.metrics.faithfulness
    assert f.n_masked == 2  # l1:1 and l2:1
    assert f.masked_emphasized_asr == 0.0  # z_b = 0.5 > z_t = 0.4 once l1:1 is gone
    assert f.masked_random_asr == 1.0  # masking channel 0 or 2 leaves the attack working
    # attacked images end at (0, 1): z_t − z_b = 1.4 − 0.5; without l*:1, 0.4 − 0.5; random
    # masks hold channels 0 and/or 2 (x0 is 0 there; without channel 2, z_t − z_b = 1 − 0)
    draws = random_masks({"l1": [1], "l2": [1]}, {"l1": 3, "l2": 3}, f.random_draws)
    without_2 = sum(2 in d["l1"] or 2 in d["l2"] for d in draws) / len(draws)
    assert f.margin_unmasked == pytest.approx(0.9)
    assert f.margin_emphasized == pytest.approx(-0.1)
    assert f.margin_random == pytest.approx(0.9 + 0.1 * without_2)
    assert f.faithful is True
    # clean (1, 0.2): without l*:1, z_b = 1.5 > 0.4; without channel 0 the model answers z_t
    # (0.2 + 0.4 > 0.5, or 0.2 > 0 with channel 2 gone too); without channel 2 alone, benign
    without_0 = sum(0 in d["l1"] or 0 in d["l2"] for d in draws) / len(draws)
    assert f.clean_accuracy_emphasized == 1.0
    assert f.clean_accuracy_random == pytest.approx(1 - without_0)


def test_intervention_agrees_with_the_graph():
    """Ablating an emphasized neuron lowers the target logit on attacked images."""
    model = Planted()
    adv = torch.tensor([[0.0, 1.0]]).view(1, 2, 1, 1)
    with mask(model, {"l1": [1]}):
        masked = model(adv)[0, TARGET]
    assert masked < model(adv)[0, TARGET]
    assert model(adv).argmax(1).item() == TARGET


def test_votes_importance_picks_the_most_active_channels():
    g = massif.analyze(planted_model(), planted_data(), benign=BENIGN, target=TARGET,
                       nodes_per_layer=1, importance="votes", device="cpu")
    # top-1 vote: clean images (1, .2, .5) vote channel 0, attacked (0, 1, .5) channel 1
    assert {n.id: n.group for n in g.nodes if n.layer == "l1"} == {
        "l1:0": "suppressed", "l1:1": "emphasized"}
    assert g.node("l1:0").importance_benign[0] == 1.0


@pytest.mark.parametrize("curve,rising,k", [
    ([0, 1, 2, 3, 4], True, 2), ([0, 0, 0, 0, 4], True, 4), ([4, 0, 0, 0, 0], False, 1),
    ([0, 0.09, 0.2], True, 2), ([0, 0.1, 0.2], True, 1), ([1, 1, 1], True, 1),
])
def test_flip_index(curve, rising, k):
    assert flip_index(curve, rising) == k


def test_graph_round_trips_through_json(graph, tmp_path):
    path = graph.save(tmp_path / "graph.json")
    again = massif.Graph.load(path)
    assert again == graph
    assert not math.isnan(again.metrics.clean_accuracy)


class SharedFeature(torch.nn.Module):
    """A model where deleting the benign class's own neuron "stops" the attack.

    Images are 2 channels × 1 × 1 pixel, ``x = (x0, x1)``; benign images are ``(1, 0.2)``.

        l1 (1×1 conv + ReLU):  l1:0 = x0    (the benign feature)
                               l1:1 = x1    (the target feature, which the attack raises)
                               l1:2 = 1     (a constant feature both classes read)
        l2 (1×1 conv + ReLU):  l2:i = l1:i
        logits: z_b = 1.5·l2:0 + 1.4·l2:2,  z_t = l2:1 + 1.8·l2:2,  z_other = 1.6

    Clean: z = (2.9, 2.0, 1.6), benign. Attacked to (0, 1): z = (1.4, 2.8, 1.6), target. The
    benign graph (one node per layer) holds channel 0 (1.5 > 1.4); the attacked graph channel 2
    (1.8 > 1), so channel 2 is *emphasized*: the target reads it most. But the attack does not
    move it: deleting it takes the benign class with it (z_b = 1.5 < 1.6 on clean images) and
    sends the attacked images to the third class (z_t = 1 < 1.6), so the ASR with it masked
    is 0, while random masks (channel 1, or channels 0 and 1) leave z_t = 1.8 winning on the
    attacked images: ASR 1. The ASR check passes. The target margin z_t − z_b on the attacked
    images falls from 1.4 to 1.0 without channel 2, to 0.4 without channel 1 (the attack's real
    pathway): the margin check says the graph is not faithful.
    """

    def __init__(self) -> None:
        super().__init__()
        self.l1 = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.ReLU())
        self.l2 = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU())
        self.head = torch.nn.Linear(3, 3)
        with torch.no_grad():
            w1 = torch.zeros(3, 2, 1, 1)
            w1[0, 0] = w1[1, 1] = 1.0
            self.l1[0].weight.copy_(w1)
            self.l1[0].bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
            self.l2[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.l2[0].bias.zero_()
            self.head.weight.copy_(torch.tensor([[1.5, 0.0, 1.4], [0.0, 1.0, 1.8], [0, 0, 0]]))
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 1.6]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l2(self.l1(x)).flatten(1))


def shared_feature_data(n: int = 24) -> TensorDataset:
    images = torch.zeros(2 * n, 2, 1, 1)
    images[:n, 0], images[:n, 1] = 1.0, 0.2  # benign
    images[n:, 1] = 1.0  # target
    return TensorDataset(images, [BENIGN] * n + [TARGET] * n, ["benign", "target", "other"],
                         name="shared-feature")


def test_deleting_the_class_own_neuron_fails_the_check_that_the_old_one_passed():
    model = massif.load_model(SharedFeature(), layers=["l1", "l2"], image_size=1, channels=2,
                              class_names=["benign", "target", "other"])
    g = massif.analyze(model, shared_feature_data(), benign="benign", target="target",
                       attack="fgm", max_strength=3.0, steps=4, nodes_per_layer=1,
                       device="cpu")
    groups = {n.id: n.group for n in g.nodes}
    assert groups == {"l1:0": "suppressed", "l1:2": "emphasized",
                      "l2:0": "suppressed", "l2:2": "emphasized"}
    assert g.metrics.clean_accuracy == 1.0 and g.metrics.attack_success_rate[-1] == 1.0
    f = g.metrics.faithfulness
    # the old check (ASR only) passes: the emphasized mask "stops" the attack, random ones not
    assert f.masked_emphasized_asr == 0.0 and f.masked_random_asr == 1.0
    # ... because the class is gone
    assert f.clean_accuracy_emphasized == 0.0
    draws = random_masks({"l1": [2], "l2": [2]}, {"l1": 3, "l2": 3}, f.random_draws)
    alone = sum(d == {"l1": [1], "l2": [1]} for d in draws) / len(draws)  # channel 1 only
    assert 0 < alone < 1
    assert f.clean_accuracy_random == pytest.approx(alone)
    # the margin does not vanish with the class: the new check fails
    assert f.margin_unmasked == pytest.approx(1.4)
    assert f.margin_emphasized == pytest.approx(1.0)
    assert f.margin_random == pytest.approx(0.4)
    assert f.faithful is False
    said = ("masking the 2 emphasized neurons lowers the attacked images' target margin by "
            "0.40, as many random ones by 1.00")
    assert any(w.startswith(said) for w in g.warnings)
    text = g.summary()
    assert "NOT faithful" in text and "the class is gone" in text
