"""Model families: every torchvision classifier gets its own default layers, named as the model
names them, with its units on the right axis; a small ViT and a small Swin (torchvision's own
classes, random weights) go through every stage: analysis, pictures, deletion, one image."""

from __future__ import annotations

import io
import subprocess

import pytest
import torch
from PIL import Image

import massif
from massif import MassifError
from massif.pictures.graph_pictures import ensure_graph_pictures
from tests.helpers.cli import MASSIF


@pytest.mark.parametrize(("name", "first", "last", "units"), [
    ("resnet18", "layer1", "layer4", [64, 128, 256, 512]),
    ("convnext_tiny", "features.1", "features.7", [96, 192, 384, 768]),
    ("swin_t", "features.1", "features.7", [96, 192, 384, 768]),
    ("efficientnet_b0", "features.1", "features.8", [16, 24, 40, 112, 1280]),
    ("mobilenet_v3_small", "features.0", "features.12", [16, 16, 24, 48, 576]),
    ("regnet_x_400mf", "trunk_output.block1", "trunk_output.block4", [32, 64, 160, 400]),
    ("densenet121", "features.relu0", "features.norm5", [64, 256, 512, 1024, 1024]),
    ("vit_b_16", "encoder.layers.encoder_layer_0.mlp.1", "encoder.layers.encoder_layer_11.mlp.1",
     [3072] * 12),
])
def test_every_family_has_its_own_default_layers(name, first, last, units):
    model = massif.load_model(f"torchvision:{name}", weights="none")
    assert model.layer_names[0] == first and model.layer_names[-1] == last
    assert list(model.layer_channels.values()) == units
    layout = {"swin_t": "channels_last", "vit_b_16": "tokens"}.get(name, "channels")
    assert {u.layout for u in model.units.values()} == {layout}
    if name == "vit_b_16":  # the class token is apart from the 196 patches
        assert {(u.prefix, u.patch_grid()) for u in model.units.values()} == {(1, (14, 14))}


def test_layers_are_named_as_the_model_names_them_the_old_spelling_too():
    model = massif.load_model("torchvision:resnet18", weights="none",
                              layers="net.layer2,layer1")
    assert model.layers == {"layer1": "net.layer1", "layer2": "net.layer2"}
    with pytest.raises(MassifError, match="unknown layer 'layer9'"):
        massif.load_model("torchvision:resnet18", weights="none", layers="layer9")


def test_a_swin_stage_read_as_channels_first_is_refused():
    with pytest.raises(MassifError, match="layer features.3 outputs shape .* with its units on "
                                          "axis 3, not a channels layout"):
        massif.load_model("torchvision:swin_t", weights="none", layers="features.3@channels")


def small_vit() -> torch.nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=3)
    with torch.no_grad():  # torchvision starts the head at zero: no gradient would flow
        net.heads.head.weight.normal_(0, 0.2)
        net.heads.head.bias.copy_(torch.tensor([1.0, 0.0, -2.0]))  # a is what it says, mostly
    return net


def small_swin() -> torch.nn.Module:
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    net = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                          window_size=[2, 2], num_classes=3)
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor([1.0, 0.0, -2.0]))
    return net


def images(n: int = 8) -> massif.TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3 * n, 3, 32, 32, generator=g)
    return massif.TensorDataset(x, [0] * n + [1] * n + [2] * n, ["a", "b", "c"], name="noise")


@pytest.mark.parametrize(("build", "layout", "units"), [
    (small_vit, "tokens", {"encoder.layers.encoder_layer_0.mlp.1": 32,
                           "encoder.layers.encoder_layer_1.mlp.1": 32}),
    (small_swin, "channels_last", {"features.1": 8, "features.3": 16}),
])
def test_a_transformer_goes_through_every_stage(build, layout, units, tmp_path):
    model = massif.load_model(build(), image_size=32, channels=3, class_names=["a", "b", "c"])
    assert model.layer_channels == units
    assert {u.layout for u in model.units.values()} == {layout}
    data = images()
    graph = massif.analyze(model, data, benign="a", target="b", steps=3, max_strength=4.0,
                           nodes_per_layer=3, device="cpu")
    assert graph.metrics.clean_accuracy > 0.5
    assert graph.layers == list(units) and graph.nodes
    for node in graph.nodes:
        assert 0 <= node.channel < units[node.layer]
    second = [n.id for n in graph.nodes if n.layer == graph.layers[1]]
    assert {e.target for e in graph.edges} == set(second)  # edges through attention
    made = ensure_graph_pictures(model, data, graph, tmp_path / "cache", steps=4, k=3)
    for nid in (n.id for n in graph.nodes):
        for kind in ("pictures", "examples"):
            with Image.open(made[kind][nid]) as im:
                assert im.size[0] > 0
    editor = massif.Editor(model, data, benign="a", target="b", steps=3, max_strength=4.0,
                           device="cpu", sample_size=6)
    first = graph.nodes[0].id
    result = editor.evaluate([first])  # the deletion, measured through the edited model
    assert result.mask == [first] and 0 <= result.clean_accuracy_benign.after <= 1
    assert result.adaptive_asr is not None
    detail = editor.image(0, graph)
    assert set(detail.activations) == {n.id for n in graph.nodes}
    # the exported edit deletes on the units' axis in a fresh copy of the model, too
    buf = io.BytesIO()
    editor.export([first], buf)
    buf.seek(0)
    edited = massif.apply_mask(build(), torch.load(buf, weights_only=True)).eval()
    x = data.load([0, 1, 2])
    with torch.no_grad(), editor.edited([first]) as net:
        want = net(x)
    with torch.no_grad():
        assert torch.allclose(edited(x), want, atol=1e-6)
        assert not torch.allclose(model.module(x), want, atol=1e-6)  # the deletion matters


def test_the_cli_analyses_a_swin_with_its_defaults(tmp_path):
    """``--model torchvision:swin_t --weights none`` on an image folder: Swin's stages, read
    channels-last, with 96 to 768 units."""
    for c in ("tench", "goldfish"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (64, 64), (40 * i, 90, 160 if c == "tench" else 20)).save(
                tmp_path / "data" / c / f"{i}.png")
    done = subprocess.run(
        [MASSIF, "analyze", "--model", "torchvision:swin_t", "--weights", "none", "--data",
         str(tmp_path / "data"), "--benign", "tench", "--target", "goldfish", "--steps", "2",
         "--no-pictures", "--device", "cpu", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    graph = massif.Graph.load(tmp_path / "out" / "graph.json")
    assert graph.layers == ["features.1", "features.3", "features.5", "features.7"]
    bound = dict(zip(graph.layers, [96, 192, 384, 768]))
    assert all(n.channel < bound[n.layer] for n in graph.nodes)
