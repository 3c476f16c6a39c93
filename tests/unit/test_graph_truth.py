"""The engine on a hand-weighted model where every number is known (see tiny.py)."""

import math

import pytest
import torch

import massif
from massif.analysis.graph import flip_index
from massif.hooks import mask
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
    # the faithfulness check: emphasized neurons masked must do better than random ones
    assert graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, masked=(0.0, 0.87, 33)) == []
    (unfaithful,) = graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, masked=(0.9, 0.8, 33))
    assert unfaithful.startswith("masking the 33 emphasized neurons leaves the attack at 90% "
                                 "(with as many random ones 80%)")
    # random masks that stop the attack too: the check cannot tell, so no warning
    assert graph_warnings(0.97, 0.78, 979, "Sneaker", 3.5, masked=(0.0, 0.0, 33)) == []
    assert graph_warnings(0.97, 0.05, 979, "Sneaker", 3.5, masked=(0.9, 0.8, 33))[0].startswith(
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
