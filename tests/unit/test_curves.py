"""Deletion curves on the planted model (tests/helpers/tiny.py), where every point is known.

The planted graph with one node per layer: ``l*:0`` suppressed (the benign feature x0), ``l*:1``
emphasized (the target feature x1, the attack's pathway). FGM up to 3.5 takes every benign image
``(1, 0.2)`` to ``(0, 1)``, where ``z = (z_b, z_t, z_o) = (0.5, 1.4, 0)``.
"""

import math

import pytest

import massif
from massif.edit import Curves
from massif.edit.curves import area_cost, area_k
from massif.errors import MassifError
from tests.helpers.tiny import planted_data, planted_model


@pytest.fixture(scope="module")
def editor_graph():
    model, data = planted_model(), planted_data()
    graph = massif.analyze(model, data, benign="benign", target="target", attack="fgm",
                           max_strength=3.5, steps=8, nodes_per_layer=1, device="cpu")
    editor = massif.Editor.from_graph(model, data, graph, device="cpu", sample_size=0)
    return editor, graph


@pytest.fixture(scope="module")
def curves(editor_graph):
    editor, graph = editor_graph
    return editor.curves(graph)


def test_the_planted_pathway_comes_first_and_its_curve_is_exact(editor_graph, curves):
    _, graph = editor_graph
    assert {n.id: n.group for n in graph.nodes} == {
        "l1:0": "suppressed", "l1:1": "emphasized", "l2:0": "suppressed", "l2:1": "emphasized"}
    assert curves.n_emphasized == 2 and curves.n_images == 6 and curves.n_target_images == 6
    for ranking in ("vulnerability", "importance-change", "gradient-x-activation", "votes"):
        assert curves.curve(ranking).order[:2] == ["l1:1", "l2:1"], ranking
    # gradient × activation toward z_t at (0, 1): 1 for l*:1, 0.5 · 0.8 for l*:2, 0 for l*:0;
    # the last channel left of a layer is never deleted
    assert curves.curve("gradient-x-activation").order == ["l1:1", "l2:1", "l1:2", "l2:2"]
    # activation change |a(x_K) − a(x)|: 1 for l*:0, 0.8 for l*:1, 0 for the constant l*:2
    assert curves.curve("activation-change").order == ["l1:0", "l2:0", "l1:1", "l2:1"]
    vul = curves.curve("vulnerability")
    assert [p.k for p in vul.points] == [0, 1, 2]  # 1, 2 and all emphasized (2)
    start, one, two = vul.points
    # unedited: every benign image right and flipped, every target image right
    assert (start.asr, start.clean_accuracy, start.target_accuracy, start.cost) == (1, 1, 1, 0)
    assert start.margin == pytest.approx(1.4 - 0.5)
    # without l1:1 (and l2:1): attacked images give z_t = 0.4 < z_b = 0.5, clean ones stay
    # benign; but the target's own images go too (the attack is stopped by deleting the class
    # it aims at): the cost is the whole target class
    for p, ids in ((one, ["l1:1"]), (two, ["l1:1", "l2:1"])):
        assert p.neurons == ids
        assert (p.asr, p.clean_accuracy, p.target_accuracy, p.cost) == (0, 1, 0, 1)
        assert p.margin == pytest.approx(0.4 - 0.5)
    assert vul.auc_k == pytest.approx(0.5 / math.log2(3))  # ASR 1 → 0 over log2(1 + k) ∈ [0, 1]
    assert vul.auc_cost == pytest.approx(1.0)  # ASR 0 only at the full cost
    # deleting l*:0, the benign feature: the clean images answer z_t (0.6 > 0.5), none is right,
    # so the ASR reads 0 though the attacked images still go to the target (margin 0.9)
    act = curves.curve("activation-change")
    first = act.points[1]
    assert (first.k, first.asr, first.clean_accuracy, first.target_accuracy) == (1, 0, 0, 1)
    assert first.margin == pytest.approx(0.9) and first.cost == 1
    four = act.points[-1]  # l*:0 and l*:1 gone: z = (0.5, 0.4, 0) on every image
    assert (four.k, four.asr, four.clean_accuracy, four.target_accuracy) == (4, 0, 1, 0)
    assert act.auc_cost == pytest.approx(1.0)
    assert curves.k_common == 2


def test_random_points_are_the_means_of_their_draws(editor_graph, curves):
    editor, _ = editor_graph
    rnd = curves.curve("random")
    assert curves.random_draws == 10 and rnd.order == []
    assert [p.k for p in rnd.points] == [0, 1, 2, 4]
    four = rnd.points[-1]
    assert len(four.draws) == 10
    for p in rnd.points[1:]:
        assert all(len(d) == p.k for d in p.draws)
        assert all(d == full[: p.k] for d, full in zip(p.draws, four.draws))  # nested
        asrs = [editor.evaluate(d, adaptive=False) for d in p.draws]
        mean = sum(r.transfer_asr.after[-1] for r in asrs) / len(asrs)
        acc = sum(r.clean_accuracy_benign.after for r in asrs) / len(asrs)
        assert p.asr == pytest.approx(mean) and p.clean_accuracy == pytest.approx(acc)
        assert p.asr_std is not None and p.asr_std >= 0
    assert rnd.auc_k_std is not None and rnd.auc_cost_std is not None


def test_the_table_json_and_plots(curves, tmp_path):
    text = curves.table()
    assert "vulnerability" in text and "AUC(cost)" in text and "random" in text
    written = curves.save(tmp_path / "out")
    assert [p.name for p in written] == ["curves.json", "curves.svg", "curves.png"]
    again = Curves.model_validate_json(written[0].read_text())
    assert again == curves
    import xml.etree.ElementTree as ET

    svg = ET.parse(written[1]).getroot()
    assert svg.tag.endswith("svg") and len(list(svg.iter("{http://www.w3.org/2000/svg}polyline")))
    from PIL import Image

    with Image.open(written[2]) as img:
        assert img.format == "PNG" and img.size == (980, 470)


def test_a_fresh_attack_through_the_edited_model(editor_graph):
    """Without l1:1 no step toward the target helps: z_t = 0.4 whatever the image, and the
    attack can only lower z_b = x0 + 0.5 to 0.5."""
    editor, graph = editor_graph
    c = editor.curves(graph, ks=[1], rankings="vulnerability", adaptive=True)
    assert c.adaptive
    assert [(p.k, p.adaptive_asr) for p in c.curve("vulnerability").points] == [
        (0, 1.0), (1, 0.0), (2, 0.0)]


def test_areas():
    # a straight fall from 1 to 0 between k = 0 and k = 1, flat after
    assert area_k([(0, 1.0), (1, 0.0), (3, 0.0)], 3) == pytest.approx(0.5 / 2)
    assert area_k([(0, 1.0)], 0) is None
    # the lowest ASR within each budget: 1 until cost 0.2, 0.5 until 0.6, then 0
    assert area_cost([(0.0, 1.0), (0.2, 0.5), (0.6, 0.0), (0.1, 0.9)], 1.0) == pytest.approx(
        0.1 * 1.0 + 0.1 * 0.9 + 0.4 * 0.5)
    assert area_cost([(0.0, 1.0)], 0.0) is None


@pytest.mark.parametrize("kw, needle", [
    ({"ks": [100]}, "k = 100 is more than the 4 neurons"),
    ({"ks": [0]}, "≥ 1"),
    ({"ks": "1,x"}, "whole numbers"),
    ({"ks": []}, "no sizes"),
    ({"rankings": ""}, "rankings are empty"),
    ({"rankings": ["vulnerabilty"]}, "unknown ranking 'vulnerabilty'"),
    ({"draws": 3}, "draws must be 10"),
])
def test_bad_input_is_one_line(editor_graph, kw, needle):
    editor, graph = editor_graph
    with pytest.raises(MassifError, match=needle.replace("(", r"\(")) as e:
        editor.curves(graph, **kw)
    assert "\n" not in str(e.value)


def test_no_target_images_is_refused(editor_graph):
    _, graph = editor_graph
    data = planted_data()
    benign_only = massif.TensorDataset(data.images[:6], data.labels[:6], data.class_names,
                                       name="planted-benign-only")
    editor = massif.Editor(planted_model(), benign_only, benign="benign", target="target",
                           attack="fgm", max_strength=3.5, steps=8, nodes_per_layer=1,
                           device="cpu", sample_size=0)
    with pytest.raises(MassifError, match="no images of the target class 'target'"):
        editor.curves(graph)
