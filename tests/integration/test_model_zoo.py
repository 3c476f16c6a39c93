"""timm and Hugging Face models: ``--model timm:NAME`` and ``--model hf:PATH`` load with their
own normalisation, size and class names, get their family's default layers with the units on the
right axis (a ViT's MLP units after the class and distillation tokens, Swin channels-last), and
analyse end to end from the CLI. Everything is built from configs with random weights: nothing
downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import massif
from massif import MassifError

timm = pytest.importorskip("timm", reason="timm is in the test extra: run ./test.sh")
transformers = pytest.importorskip("transformers", reason="in the test extra: run ./test.sh")

MASSIF = str(Path(sys.executable).parent / "massif")
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.mark.parametrize(("name", "first", "layout", "units", "prefix"), [
    ("test_vit", "blocks.0.mlp.act", "tokens", [192] * 6, 1),
    ("deit_tiny_distilled_patch16_224", "blocks.0.mlp.act", "tokens", [768] * 12, 2),
    ("test_resnet", "layer1", "channels", [32, 48, 192, 96], 0),
    ("swin_tiny_patch4_window7_224", "layers.0", "channels_last", [96, 192, 384, 768], 0),
    ("test_efficientnet", "blocks.1", "channels", None, 0),
])
def test_timm_families_have_their_default_layers(name, first, layout, units, prefix):
    model = massif.load_model(f"timm:{name}", weights="none")
    assert model.layer_names[0] == first
    assert {u.layout for u in model.units.values()} == {layout}
    assert {u.prefix for u in model.units.values()} == {prefix}
    if units is not None:
        assert list(model.layer_channels.values()) == units
    assert model.class_names[1] == "goldfish"  # ImageNet's, from timm, as torchvision's
    assert model.image_size == timm.data.resolve_data_config({}, model=model.module.net
                                                             )["input_size"][-1]


def test_timm_weights_none_are_seeded_and_a_file_loads(tmp_path):
    a = massif.load_model("timm:test_vit", weights="none")
    b = massif.load_model("timm:test_vit", weights="none")
    assert a.fingerprint == b.fingerprint
    changed = {k: v + 0.01 for k, v in a.module.net.state_dict().items()}
    torch.save(changed, tmp_path / "mine.pt")
    c = massif.load_model("timm:test_vit", weights=str(tmp_path / "mine.pt"))
    assert c.fingerprint != a.fingerprint
    x = torch.rand(2, 3, 160, 160)
    # the model's own normalisation (timm's test_vit: mean and std of ImageNet) is inside
    mean = torch.tensor(timm.data.resolve_data_config({}, model=a.module.net)["mean"])
    std = torch.tensor(timm.data.resolve_data_config({}, model=a.module.net)["std"])
    with torch.no_grad():
        want = a.module.net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
        assert torch.allclose(a.module(x), want)


def hf_vit(tmp_path: Path, kind: str = "vit") -> tuple[Path, torch.nn.Module]:
    """A small Hugging Face classifier saved as save_pretrained writes it, with its processor's
    mean, std and size, and class names."""
    T = transformers
    labels = {0: "tench", 1: "goldfish", 2: "shark"}
    common = dict(num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    config = {
        "vit": lambda: T.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=48, **common),
        "deit": lambda: T.DeiTConfig(image_size=32, patch_size=8, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=48, **common),
        "swin": lambda: T.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                                     num_heads=[1, 2], window_size=4, **common),
        "resnet": lambda: T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                         **common),
    }[kind]()
    torch.manual_seed(1)  # not the seed of --weights none
    mapping = T.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING[type(config)]
    net = (mapping[0] if isinstance(mapping, tuple) else mapping)(config).eval()
    folder = tmp_path / f"hf-{kind}"
    net.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
        "size": {"height": 32, "width": 32}, "do_normalize": True}))
    return folder, net


@pytest.mark.parametrize(("kind", "layout", "units", "prefix"), [
    ("vit", "tokens", {"vit.layers.0.mlp.activation_fn": 48,
                       "vit.layers.1.mlp.activation_fn": 48}, 1),
    ("deit", "tokens", {"deit.layers.0.mlp.activation_fn": 48,
                        "deit.layers.1.mlp.activation_fn": 48}, 2),
    ("swin", "tokens", {"swin.encoder.layers.0.blocks.0.mlp.activation_fn": 64,
                        "swin.encoder.layers.1.blocks.0.mlp.activation_fn": 128}, 0),
    ("resnet", "channels", {"resnet.encoder.stages.0": 8, "resnet.encoder.stages.1": 16}, 0),
])
def test_a_hugging_face_folder_loads_as_saved(kind, layout, units, prefix, tmp_path):
    folder, net = hf_vit(tmp_path, kind)
    model = massif.load_model(f"hf:{folder}")  # the folder's own weights
    if kind != "resnet":  # transformers 4 names the MLP differently: same units
        assert model.layer_channels == units
    else:
        assert list(model.layer_channels.values()) == list(units.values())
    assert {u.layout for u in model.units.values()} == {layout}
    assert {u.prefix for u in model.units.values()} == {prefix}
    assert model.class_names == ["tench", "goldfish", "shark"]
    assert model.image_size == 32
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():  # the processor's normalisation, and the saved weights
        assert torch.allclose(model.module(x), net((x - mean) / std).logits, atol=1e-5)
    fresh = massif.load_model(f"hf:{folder}", weights="none")  # the architecture, seeded
    assert fresh.fingerprint != model.fingerprint
    assert fresh.fingerprint == massif.load_model(f"hf:{folder}", weights="none").fingerprint


def image_folder(root: Path, size: int) -> Path:
    for c, colour in (("tench", (30, 90, 160)), ("goldfish", (200, 120, 20))):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (size, size), (colour[0] + 20 * i, colour[1], colour[2])).save(
                root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("which", ["timm:test_vit", "hf"])
def test_the_cli_analyses_a_timm_and_a_hugging_face_vit(which, tmp_path):
    data = image_folder(tmp_path / "data", 40)
    if which == "hf":
        folder, _ = hf_vit(tmp_path)
        which, weights, bound = f"hf:{folder}", [], 48
    else:
        weights, bound = ["--weights", "none"], 192
    done = subprocess.run(
        [MASSIF, "analyze", "--model", which, *weights, "--data", str(data),
         "--benign", "tench", "--target", "goldfish", "--steps", "2", "--no-pictures",
         "--device", "cpu", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=OFFLINE)
    assert done.returncode == 0, done.stderr[-2000:]
    graph = massif.Graph.load(tmp_path / "out" / "graph.json")
    assert all(lay.endswith(("mlp.act", "mlp.activation_fn")) for lay in graph.layers)
    assert graph.nodes and all(0 <= n.channel < bound for n in graph.nodes)
    assert graph.edges


def run_error(args: list[str], tmp_path: Path) -> str:
    done = subprocess.run([MASSIF, "analyze", *args, "--data", str(tmp_path), "--benign", "a",
                           "--target", "b", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=OFFLINE)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("massif: error: "), done.stderr
    return lines[0]


def test_bad_timm_and_hugging_face_models_are_one_line_each(tmp_path):
    assert "did you mean: test_vit" in run_error(["--model", "timm:test_vitt",
                                                   "--weights", "none"], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no config.json" in run_error(["--model", f"hf:{empty}"], tmp_path)
    line = run_error(["--model", "hf:nobody/no-such-model-here"], tmp_path)
    assert "no Hugging Face model hf:nobody/no-such-model-here" in line
    assert "name the model" in run_error(["--model", "timm:"], tmp_path)
    line = run_error(["--model", "timm:test_vit", "--weights", str(tmp_path / "no.pt")],
                     tmp_path)
    assert "does not exist" in line
    folder, _ = hf_vit(tmp_path)
    torch.save({"x": torch.zeros(2)}, tmp_path / "other.pt")
    assert "do not fit hf:" in run_error(["--model", f"hf:{folder}", "--weights",
                                          str(tmp_path / "other.pt")], tmp_path)


@pytest.mark.parametrize(("spec", "extra"), [("timm:test_vit", "timm"), ("hf:x", "hf")])
def test_a_missing_extra_says_what_to_install(spec, extra):
    package = {"timm": "timm", "hf": "transformers"}[extra]
    code = (f"import sys; sys.modules[{package!r}] = None\n"  # as if it were not installed
            "import massif\n"
            f"try:\n    massif.load_model({spec!r}, weights='none')\n"
            "except massif.MassifError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert f"pip install 'massif[{extra}]'" in done.stdout, done.stderr[-2000:]


def test_a_layer_of_a_timm_model_can_be_named(tmp_path):
    model = massif.load_model("timm:test_vit", weights="none", layers="blocks.2.mlp.act,"
                              "blocks.0.mlp.act")
    assert model.layer_names == ["blocks.0.mlp.act", "blocks.2.mlp.act"]
    # a layer named outside the family's list reads its layout from the model: the block's
    # output is a token sequence, its class token stated
    model = massif.load_model("timm:test_vit", weights="none", layers="blocks.1@tokens+1")
    assert model.units["blocks.1"].layout == "tokens" and model.units["blocks.1"].prefix == 1
    with pytest.raises(MassifError, match="unknown layer"):
        massif.load_model("timm:test_vit", weights="none", layers="blocks.99")
