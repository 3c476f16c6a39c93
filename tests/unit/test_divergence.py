"""The divergence measure: where attacked images cross to the target class (analysis.divergence).

On ``tiny.Ladder`` the crossing layer of every image at every strength is known by
construction; here it is worked out from the ladder's rule alone and compared with the graph.
"""

import pytest
import torch

import massif
from massif.analysis.divergence import crossed_counts, crossing, divergence_layer
from massif.schemas import Graph
from tests.helpers.tiny import Ladder, ladder_dataset

BENIGN_X0 = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
STRENGTHS = (0.0, 0.15, 0.3, 0.6)
LAYERS = ["l1", "l2", "l3", "l4"]


def expected_crossing(a: float, eps: float) -> int:
    """The ladder's rule: FGSM takes (a, 0) to (a − ε, ε) (clipped); layer k sees
    (x0, w_k·x1) and is closer to the target exactly when w_k·x1 > x0."""
    x0, x1 = max(a - eps, 0.0), min(eps, 1.0)
    wins = [w * x1 > x0 for w in Ladder.WEIGHTS]
    for k in range(len(wins)):
        if all(wins[k:]):
            return k
    return len(wins)


@pytest.fixture(scope="module")
def graph():
    data = ladder_dataset(BENIGN_X0)
    model = massif.load_model(Ladder(), layers=LAYERS, image_size=1, channels=2,
                              class_names=data.class_names)
    return massif.analyze(model, data, benign="benign", target="target", attack="fgsm",
                          strengths=STRENGTHS, nodes_per_layer=2, device="cpu")


def test_every_strength_crosses_where_the_ladder_says(graph):
    div = graph.metrics.divergence
    assert div is not None and div.n_images == 6 and div.n_target_images == 3
    expected = []
    for eps in STRENGTHS:
        layers = [expected_crossing(a, eps) for a in BENIGN_X0]
        expected.append([sum(c <= k for c in layers) / 6 for k in range(4)])
    assert expected[1] == [0, 0, 2 / 6, 1]  # the rule itself, by hand: ε = 0.15
    assert expected[3] == [2 / 6, 1, 1, 1]  # ε = 0.6: (0.5, 0) crosses at l1, (1, 0) at l2
    for got, want in zip(div.crossed, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-9)


def test_the_divergence_layer_is_the_median_crossing_layer(graph):
    # At ε_max = 0.6 a third of the images cross at l1, all by l2: the median is l2.
    assert graph.metrics.divergence_layer == "l2"
    assert "l2" in graph.summary() and "crossed" in graph.summary()


def test_crossing_needs_the_target_to_stay_winning():
    m = torch.tensor([[1.0, -1.0, 2.0, 3.0],   # wins at l1, loses at l2, wins from l3 on
                      [1.0, 1.0, 1.0, -0.5],   # loses at the last layer: never crosses
                      [0.5, 0.5, 0.5, 0.5],    # wins everywhere
                      [0.0, 0.0, 0.0, 1e-3]])  # a tie is not a win
    assert crossing(m).tolist() == [2, 4, 0, 3]
    assert crossed_counts(crossing(m), 4).tolist() == [1, 1, 2, 3]
    assert divergence_layer(LAYERS, [0.0, 0.0, 0.0, 0.0]) is None
    assert divergence_layer(LAYERS, [0.1, 0.2, 0.3, 0.4]) == "l2"
    assert divergence_layer(LAYERS, [0.3, 0.3, 0.3, 0.6]) == "l1"


def test_a_graph_of_format_1_reads_without_a_divergence(graph, tmp_path):
    old = graph.model_dump(mode="json")
    old["schema_version"] = 1
    del old["metrics"]["divergence"]
    old["metrics"]["divergence_layer"] = "l1"  # version 1's node-set rule
    for field in ("clean_accuracy_emphasized", "clean_accuracy_random", "margin_unmasked",
                  "margin_emphasized", "margin_random", "faithful"):
        del old["metrics"]["faithfulness"][field]
    g = Graph.parse_data(old)
    assert g.schema_version == 3
    assert g.metrics.divergence is None and g.metrics.divergence_layer is None
    assert "graph format 1" in g.warnings[-2] and "graph format 2" in g.warnings[-1]
    assert "divergence layer: none" in g.summary()
    assert "faithfulness (graph format 2, ASR only)" in g.summary()


def test_a_graph_of_format_2_reads_without_the_masks_clean_accuracy(graph):
    """Version 2 had the ASRs only: they are kept, the rest is null, and a warning says why."""
    old = graph.model_dump(mode="json")
    old["schema_version"] = 2
    f = old["metrics"]["faithfulness"]
    for field in ("clean_accuracy_emphasized", "clean_accuracy_random", "margin_unmasked",
                  "margin_emphasized", "margin_random", "faithful"):
        del f[field]
    g = Graph.parse_data(old)
    assert g.schema_version == 3
    assert g.metrics.faithfulness.masked_random_asr == f["masked_random_asr"]
    assert g.metrics.faithfulness.faithful is None
    assert g.metrics.faithfulness.clean_accuracy_emphasized is None
    assert "graph format 2" in g.warnings[-1] and "ASR" in g.warnings[-1]
    assert g.model_dump(mode="json")["metrics"]["divergence"] == old["metrics"]["divergence"]


def test_one_image_crosses_where_the_ladder_says(graph):
    """The per-image view on the ladder: each image's predictions, its neurons' activations
    and its crossing layer at every strength are known exactly."""
    data = ladder_dataset(BENIGN_X0)
    model = massif.load_model(Ladder(), layers=LAYERS, image_size=1, channels=2,
                              class_names=data.class_names)
    editor = massif.Editor.from_graph(model, data, graph, device="cpu", sample_size=0)
    gallery = editor.gallery(2)  # ε = 0.3
    assert [i.position for i in gallery.items] == list(range(6))
    for item, a in zip(gallery.items, BENIGN_X0):
        x0, x1 = max(a - 0.3, 0.0), 0.3
        assert item.correct and item.attacked == (1 if 16 * x1 > x0 else 0)
        assert item.success == (item.attacked == 1)
    for position in (0, 4):
        a = BENIGN_X0[position]
        d = editor.image(position)
        assert d.crossing == [LAYERS[c] if c < 4 else None
                              for c in (expected_crossing(a, e) for e in STRENGTHS)]
        for k, eps in enumerate(STRENGTHS):
            x0, x1 = max(a - eps, 0.0), min(eps, 1.0)
            for i, w in enumerate(Ladder.WEIGHTS):
                lay = f"l{i + 1}"
                if f"{lay}:1" in d.activations:
                    assert d.activations[f"{lay}:1"][k] == pytest.approx(w * x1, abs=1e-6)
                if f"{lay}:0" in d.activations:
                    assert d.activations[f"{lay}:0"][k] == pytest.approx(x0, abs=1e-6)
        # L∞: x1 moves by the whole ε, x0 by at most that
        assert d.perturbation_norm == pytest.approx(list(STRENGTHS), abs=1e-6)
        assert d.predictions[0].name == "benign"
        assert all(p.startswith("data:image/png;base64,") for p in d.attacked_pictures)
    with pytest.raises(massif.MassifError, match="no image 6"):
        editor.image(6)
    with pytest.raises(massif.MassifError, match="strength index"):
        editor.gallery(9)
