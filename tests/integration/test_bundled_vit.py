"""``--model bundled-vit``: the small vision transformer trained on Fashion-MNIST and shipped with
MASSIF. Its units are each block's MLP hidden units (tokens, the class token apart); the default
pair runs end to end on it (graph, faithfulness, deletion, one image's path, pictures), its
emphasized neurons stop the attack better than as many random ones without costing the class,
and ``massif compare`` reads it beside the CNN."""

from __future__ import annotations

import json
import subprocess

import pytest
from PIL import Image

import massif
from massif.pictures.graph_pictures import ensure_graph_pictures
from tests.helpers.cli import MASSIF


@pytest.fixture(scope="module")
def vit() -> massif.Model:
    return massif.load_model("bundled-vit")


@pytest.fixture(scope="module")
def graph(vit) -> massif.Graph:
    return massif.analyze(vit, benign="Sneaker", target="Sandal", max_images=300, device="cpu")


def test_the_bundled_vit_has_four_layers_of_mlp_units(vit):
    assert vit.layers == {f"mlp{i + 1}": f"blocks.{i}.mlp.act" for i in range(4)}
    assert {(u.layout, u.count, u.prefix, u.patch_grid()) for u in vit.units.values()} == \
        {("tokens", 128, 1, (7, 7))}


def test_the_default_pair_on_the_vit_is_faithful_at_no_cost(graph):
    """Masking the emphasized neurons stops the attack while the class stays: ASR far below
    the random neurons' at about the same clean accuracy, and the target margin drops more."""
    assert graph.metrics.clean_accuracy > 0.85
    assert graph.layers == ["mlp1", "mlp2", "mlp3", "mlp4"]
    assert all(0 <= n.channel < 128 for n in graph.nodes)
    assert graph.edges and graph.metrics.divergence_layer in graph.layers
    f = graph.metrics.faithfulness
    assert f.faithful is True
    assert f.masked_emphasized_asr + 0.3 < f.masked_random_asr
    assert f.clean_accuracy_emphasized > graph.metrics.clean_accuracy - 0.05


def test_deletion_one_image_and_pictures_on_the_vit(vit, graph, tmp_path):
    editor = massif.Editor(vit, benign="Sneaker", target="Sandal", max_images=100,
                           device="cpu")
    emphasized = [n.id for n in graph.nodes if n.group == "emphasized"][:4]
    result = editor.evaluate(emphasized)
    assert result.mask == emphasized
    assert 0 <= result.clean_accuracy_benign.after <= 1
    detail = editor.image(0, graph)
    assert set(detail.activations) == {n.id for n in graph.nodes}
    made = ensure_graph_pictures(vit, editor.dataset, graph, tmp_path / "cache", steps=4, k=3)
    for kind in ("pictures", "examples"):
        with Image.open(made[kind][graph.nodes[0].id]) as im:
            assert im.size[0] > 0


def test_compare_reads_the_cnn_beside_the_vit(graph, tmp_path):
    cnn = massif.analyze("bundled", benign="Sneaker", target="Sandal", max_images=300,
                         device="cpu")
    cnn.save(tmp_path / "cnn.json")
    graph.save(tmp_path / "vit.json")
    done = subprocess.run([MASSIF, "compare", str(tmp_path / "cnn.json"),
                           str(tmp_path / "vit.json"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    both = json.loads(done.stdout)
    assert both["same_model"] is False
    assert {both["a"]["model"]["name"], both["b"]["model"]["name"]} == {"bundled", "bundled-vit"}
