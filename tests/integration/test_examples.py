"""Dataset examples: receptive fields checked exactly, streaming top-k against brute force,
strips that show the right crops, the cache, and real models."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import massif
from massif.datasets import FashionMNIST, TensorDataset, load_dataset
from massif.errors import MassifError
from massif.hooks import frozen, record
from massif.pictures.examples import (
    ReceptiveField,
    crop_box,
    ensure_examples,
    examples_dir,
    receptive_field,
    top_examples,
)
from tests.helpers.tiny import Planted, SmallConv, planted_dataset

# ----------------------------------------------------------------------------- tiny models


class Stack(nn.Module):
    """conv3 s1 p1 → conv3 s1 p0 → maxpool 2/2 → conv3 s2 p1 → maxpool 3/2 p1 (ceil), with the
    oracle variant (average pooling, weights 1/fan_in) written out separately."""

    def __init__(self, oracle: bool = False) -> None:
        super().__init__()
        pool = nn.AvgPool2d if oracle else nn.MaxPool2d
        self.a = nn.Sequential(nn.Conv2d(1, 3, 3, 1, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 0), nn.ReLU())
        self.c = pool(2, 2)
        self.d = nn.Sequential(nn.Conv2d(4, 5, 3, 2, 1), nn.ReLU())
        self.e = pool(3, 2, 1, ceil_mode=True)
        self.fc = nn.Linear(5, 2)
        init(self, oracle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.e(self.d(self.c(self.b(self.a(x)))))
        return self.fc(x.mean((2, 3)))


class Block(nn.Module):
    def __init__(self, cin: int, oracle: bool) -> None:
        super().__init__()
        pool = nn.AvgPool2d if oracle else nn.MaxPool2d
        self.one = nn.Conv2d(cin, 2, 1)
        self.five = nn.Sequential(nn.Conv2d(cin, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 5, padding=2))
        self.pool = nn.Sequential(pool(3, 1, 1), nn.Conv2d(cin, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # functional ReLUs, as torchvision's
        return torch.relu(torch.cat([self.one(x), self.five(x), self.pool(x)], 1))


class TwoBranch(nn.Module):
    """stem conv3 s2 p1 → inception-like block (1×1 | 1×1→5×5 | pool→1×1) → maxpool 2/2 → block."""

    def __init__(self, oracle: bool = False) -> None:
        super().__init__()
        pool = nn.AvgPool2d if oracle else nn.MaxPool2d
        self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, 2, 1), nn.ReLU())
        self.block1 = Block(3, oracle)
        self.down = pool(2, 2)
        self.block2 = Block(6, oracle)
        self.fc = nn.Linear(6, 2)
        init(self, oracle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block2(self.down(self.block1(self.stem(x)))).mean((2, 3)))


def init(net: nn.Module, oracle: bool) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if oracle:
                    m.weight.fill_(1.0 / m.weight[0].numel())
                    m.bias.fill_(1.0)
                else:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))


def brute_force_boxes(oracle: nn.Module, layer: str, size: int) -> dict:
    """Every position's bounding box of the nonzero input gradient on the all-positive oracle."""
    oracle = oracle.double().eval()
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    with record(oracle, {layer: layer}) as acts:
        oracle(x)
    act = acts[layer]
    boxes = {}
    for i in range(act.shape[2]):
        for j in range(act.shape[3]):
            (g,) = torch.autograd.grad(act[0, :, i, j].sum(), x, retain_graph=True)
            rows = torch.nonzero(g[0].abs().sum((0, 2)) > 0).flatten()
            cols = torch.nonzero(g[0].abs().sum((0, 1)) > 0).flatten()
            boxes[i, j] = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return boxes


CASES = [(Stack, 17, ["a", "b", "c", "d", "e"]), (Stack, 16, ["e"]),
         (TwoBranch, 16, ["stem", "block1", "down", "block2"]), (TwoBranch, 13, ["block2"])]


@pytest.mark.parametrize("net, size, layers", CASES)
def test_crop_boxes_equal_brute_force_gradient_support_at_every_position(net, size, layers):
    model = massif.load_model(net(), layers=layers, image_size=size, channels=1)
    for layer in layers:
        rf = receptive_field(model, layer)
        expected = brute_force_boxes(net(oracle=True), layer, size)
        got = {pos: crop_box(rf, *pos, size) for pos in expected}
        assert got == expected, (layer, rf)


def test_receptive_fields_match_hand_computation():
    model = massif.load_model(Stack(), layers=["a", "b", "c", "d", "e"], image_size=17,
                              channels=1)
    assert receptive_field(model, "a") == ReceptiveField(3, 1, -1)
    assert receptive_field(model, "b") == ReceptiveField(5, 1, -1)  # two 3×3 convs
    assert receptive_field(model, "c") == ReceptiveField(6, 2, -1)  # + 2×2/2 max-pool
    assert receptive_field(model, "d") == ReceptiveField(10, 4, -3)  # + 3×3/2, padding 1
    assert receptive_field(model, "e") == ReceptiveField(18, 8, -7)  # + 3×3/2 pool, padding 1
    two = massif.load_model(TwoBranch(), layers=["block1", "block2"], image_size=16, channels=1)
    # the block's field is its widest branch's: stem 3/2 (pad 1), then 5×5 at stride 2
    assert receptive_field(two, "block1") == ReceptiveField(11, 2, -5)
    bundled = massif.load_model("bundled")
    # stem 3×3 (pad 1) → 2×2/2 pool → the 5×5 branch at stride 2
    assert receptive_field(bundled, "mixed3a") == ReceptiveField(12, 2, -5)


def test_random_weights_never_see_outside_the_box():
    """On the real nets (max-pooling, random weights, random images), the input gradient of an
    activation is zero outside its crop box."""
    g = torch.Generator().manual_seed(1)
    for net, size, layers in CASES[:3]:
        model = massif.load_model(net(), layers=layers, image_size=size, channels=1)
        x = torch.rand(1, 1, size, size, generator=g, requires_grad=True)
        with record(model.module, {lay: lay for lay in layers}) as acts:
            model.module(x)
        for layer in layers:
            rf, act = receptive_field(model, layer), acts[layer]
            for i in range(act.shape[2]):
                for j in range(act.shape[3]):
                    (grad,) = torch.autograd.grad(act[0, :, i, j].sum(), x, retain_graph=True)
                    t, lft, b, r = crop_box(rf, i, j, size)
                    grad[0, 0, t:b, lft:r] = 0
                    assert not grad.any(), (layer, i, j)


def test_crop_box_is_clipped():
    rf = ReceptiveField(size=10, stride=4, offset=-3)
    assert crop_box(rf, 0, 0, 17) == (0, 0, 7, 7)
    assert crop_box(rf, 2, 1, 17) == (5, 1, 15, 11)
    assert crop_box(rf, 4, 4, 17) == (13, 13, 17, 17)


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gap(self.conv(x)).flatten(1))


def test_a_global_layer_sees_the_whole_image_and_a_1x1_conv_one_pixel():
    model = massif.load_model(Pooled(), layers=["gap"], image_size=12, channels=1)
    rf = receptive_field(model, "gap")
    assert rf == ReceptiveField(12, 12, 0) and crop_box(rf, 0, 0, 12) == (0, 0, 12, 12)
    model = massif.load_model(Planted(), layers=["l1"], image_size=1, channels=2)
    assert receptive_field(model, "l1") == ReceptiveField(1, 1, 0)


# ----------------------------------------------------------------------------- top-k


def brute_force_top(model, data, layer, k, indices):
    with frozen(model.module), record(model.module, model.layers) as acts, torch.no_grad():
        model.module(data.load(indices))
    a = acts[layer]
    values, flat = a.flatten(2).max(2)  # [N, C]
    idx = torch.tensor(indices)
    out = []
    for c in range(a.shape[1]):
        order = sorted(range(len(indices)), key=lambda n: (-float(values[n, c]), indices[n]))
        top = order[:k]
        out.append((values[top, c], idx[top],
                    torch.stack([flat[top, c] // a.shape[3], flat[top, c] % a.shape[3]], 1)))
    return out


@pytest.mark.parametrize("batch_size", [1, 5, 8, 37, 100])
def test_streaming_top_k_equals_brute_force(batch_size):
    g = torch.Generator().manual_seed(3)
    images = torch.rand(37, 1, 8, 8, generator=g)
    data = TensorDataset(images, torch.zeros(37, dtype=torch.long), ["x"])
    model = massif.load_model(SmallConv(), layers=["c1", "c2"], image_size=8, channels=1)
    subset = [int(i) for i in torch.randperm(37, generator=g)[:29]]
    for indices in (list(range(37)), subset):
        tops = top_examples(model, data, k=6, batch_size=batch_size, indices=indices)
        for layer in ("c1", "c2"):
            top = tops[layer]
            assert top.values.shape == (model.layer_channels[layer], 6)
            for c, (values, imgs, pos) in enumerate(brute_force_top(model, data, layer, 6,
                                                                    indices)):
                assert torch.equal(top.images[c], imgs)
                assert torch.allclose(top.values[c], values, atol=1e-6)
                assert torch.equal(top.positions[c], pos)


@pytest.mark.parametrize("batch_size", [1, 4, 5, 12])
def test_ties_go_to_the_lower_dataset_index(batch_size):
    model = massif.load_model(Planted(), image_size=1, channels=2, layers=["l1"])
    data = planted_dataset(6)  # images 0..5 are identical, and so are 6..11
    order = list(reversed(range(12)))
    top = top_examples(model, data, k=3, batch_size=batch_size, indices=order)["l1"]
    assert top.images.tolist() == [[0, 1, 2], [6, 7, 8], [0, 1, 2]]
    assert top.values.tolist() == [[1.0] * 3, [1.0] * 3, [0.5] * 3]
    assert top.positions.tolist() == [[[0, 0]] * 3] * 3


def test_top_examples_reports_progress_and_checks_layers():
    model = massif.load_model(SmallConv(), layers=["c1", "c2"], image_size=8, channels=1)
    data = TensorDataset(torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long), ["x"])
    seen = []
    top_examples(model, data, ["c2"], k=2, batch_size=4, progress=lambda *a: seen.append(a))
    assert seen == [("examples", 4, 10), ("examples", 8, 10), ("examples", 10, 10)]
    with pytest.raises(MassifError, match=r"unknown layer 'c3'; did you mean: c2, c1"):
        top_examples(model, data, ["c3"])
    with pytest.raises(MassifError, match="unknown layer"):
        ensure_examples(model, data, Path("/nonexistent"), ["cc2"])


def test_a_large_dataset_is_scanned_through_a_stratified_sample(tmp_path):
    """``images`` caps the scan: the top images all come from the seeded sample, every class
    in equal share; the sample size is part of the cache."""
    from massif.datasets import sample_indices

    model = massif.load_model(SmallConv(), layers=["c1", "c2"], image_size=8, channels=1)
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(60) % 3
    data = TensorDataset(torch.rand(60, 1, 8, 8, generator=g), labels, ["a", "b", "c"])
    sample = sample_indices(data, 12)
    assert sorted(int(labels[i]) for i in sample) == [0] * 4 + [1] * 4 + [2] * 4
    ensure_examples(model, data, tmp_path, k=3, batch_size=5, images=12)
    folder = examples_dir(tmp_path, model.fingerprint, data.fingerprint)
    index = json.loads((folder / "c2.json").read_text())
    assert index["sample"] == 12
    expected = top_examples(model, data, ["c2"], k=3, batch_size=7, indices=sample)["c2"]
    assert [ch["images"] for ch in index["channels"]] == expected.images.tolist()
    assert set(i for ch in index["channels"] for i in ch["images"]) <= set(sample)
    stamp = (folder / "c2.json").stat().st_mtime_ns
    ensure_examples(model, data, tmp_path, k=3, batch_size=5, images=12)  # cached
    assert (folder / "c2.json").stat().st_mtime_ns == stamp
    ensure_examples(model, data, tmp_path, k=3, batch_size=5, images=100)  # all 60: redone
    assert json.loads((folder / "c2.json").read_text())["sample"] is None
    with pytest.raises(MassifError, match="whole number"):
        ensure_examples(model, data, tmp_path, images=0)


# ----------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def fashion_subset():
    test = FashionMNIST("test")
    idx = list(range(0, 10000, 25))  # 400 images
    return TensorDataset(test.load(idx), test.labels[idx], test.class_names, name="subset")


def read_png(path):
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im).copy())


def test_bundled_examples_are_the_receptive_fields_of_the_best_images(bundled, fashion_subset,
                                                                      tmp_path):
    data = fashion_subset
    paths = ensure_examples(bundled, data, tmp_path, batch_size=150)
    folder = examples_dir(tmp_path, bundled.fingerprint, data.fingerprint)
    assert folder == tmp_path / "examples" / f"{bundled.fingerprint}-{data.fingerprint}"
    assert len(paths) == sum(bundled.layer_channels.values())
    assert paths["mixed4a:3"] == folder / "mixed4a" / "3.png"
    tops = top_examples(bundled, data, k=9)

    for layer in bundled.layer_names:
        index = json.loads((folder / f"{layer}.json").read_text())
        rf = receptive_field(bundled, layer)
        assert index["receptive_field"] == {"size": rf.size, "stride": rf.stride,
                                            "offset": rf.offset}
        assert len(index["channels"]) == bundled.layer_channels[layer]
        for c in (0, 5):
            entry, top = index["channels"][c], tops[layer]
            assert entry["images"] == top.images[c].tolist()
            assert entry["positions"] == top.positions[c].tolist()
            assert entry["boxes"] == [list(crop_box(rf, i, j, 28)) for i, j in entry["positions"]]
            # the stored position holds the stored value, and nothing outside the box matters
            imgs = data.load(entry["images"])
            noisy = torch.rand_like(imgs)
            for n, (t_, lft, b, r) in enumerate(entry["boxes"]):
                noisy[n, :, t_:b, lft:r] = imgs[n, :, t_:b, lft:r]
            with frozen(bundled.module), record(bundled.module, bundled.layers) as acts, \
                    torch.no_grad():
                bundled.module(imgs)
                clean = acts[layer][:, c].clone()
                bundled.module(noisy)
                masked = acts[layer][:, c]
            for n, (i, j) in enumerate(entry["positions"]):
                assert clean[n, i, j] == pytest.approx(entry["values"][n], abs=1e-5)
                assert clean[n].max() == pytest.approx(entry["values"][n], abs=1e-5)
                assert masked[n, i, j] == pytest.approx(float(clean[n, i, j]), abs=1e-4)

    # mixed3a's field is 12 px: crops are enlarged 4× (nearest) to 48 px, 2 px apart
    index = json.loads((folder / "mixed3a.json").read_text())["channels"][7]
    strip = read_png(paths["mixed3a:7"])
    assert strip.shape == (48, 9 * 48 + 8 * 2)
    assert (strip[:, 48:50] == 255).all()
    image = data.load(index["images"][:1])[0, 0]
    (t_, lft, b, r), (i, j) = index["boxes"][0], index["positions"][0]
    top, left = i * 2 - 5, j * 2 - 5  # the field's unclipped corner
    crop = torch.full((12, 12), 0.5)
    crop[t_ - top : b - top, lft - left : r - left] = image[t_:b, lft:r]
    expected = (crop * 255).round().to(torch.uint8).repeat_interleave(4, 0)
    assert torch.equal(strip[:, :48], expected.repeat_interleave(4, 1))

    # a second call computes nothing and writes nothing
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    calls = []
    again = ensure_examples(bundled, data, tmp_path, progress=lambda *a: calls.append(a))
    assert again == paths and calls == []
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == files
    assert not list(tmp_path.rglob("*.part"))

    # a missing strip recomputes its layer only
    (folder / "mixed5a" / "3.png").unlink()
    ensure_examples(bundled, data, tmp_path, layers=["mixed4a", "mixed5a"],
                    progress=lambda *a: calls.append(a))
    assert calls and calls[-1] == ("examples", 400, 400)
    assert (folder / "mixed5a" / "3.png").is_file()
    assert (folder / "mixed4a.json").stat().st_mtime_ns == files[folder / "mixed4a.json"]


@pytest.mark.timing
def test_a_second_examples_call_reads_the_cache_quickly(bundled, fashion_subset, tmp_path):
    t = time.perf_counter()
    ensure_examples(bundled, fashion_subset, tmp_path, batch_size=150)
    first = time.perf_counter() - t
    t = time.perf_counter()
    ensure_examples(bundled, fashion_subset, tmp_path)
    again = time.perf_counter() - t
    print(f"\nexamples of 400 images: {first:.2f} s, then from the cache {again:.3f} s")
    assert again < max(0.5, first / 5)


def test_googlenet_examples_on_an_image_folder(tmp_path):
    g = torch.Generator().manual_seed(0)
    for name in ("giant_panda", "armadillo"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            arr = (torch.rand(80, 96, 3, generator=g) * 255).byte().numpy()
            Image.fromarray(arr, "RGB").save(tmp_path / "data" / name / f"{i}.jpg")
    # 96 px keeps it quick, and makes mixed4a's field (107 px) larger than the image
    model = massif.load_model("torchvision:googlenet", weights="none", image_size=96)
    data = load_dataset(str(tmp_path / "data"), model.image_size, model.channels)
    paths = ensure_examples(model, data, tmp_path / "cache", layers=["mixed3a", "mixed4a"], k=4,
                            batch_size=4)
    assert len(paths) == model.layer_channels["mixed3a"] + model.layer_channels["mixed4a"]
    assert receptive_field(model, "mixed3a") == ReceptiveField(43, 8, -15)
    assert receptive_field(model, "mixed4a") == ReceptiveField(107, 16, -39)
    strip = read_png(paths["mixed3a:0"])
    assert strip.shape == (43, 4 * 43 + 3 * 2, 3)  # 43 px fields at their own size, RGB
    strip = read_png(paths["mixed4a:500"])
    assert strip.shape == (48, 4 * 48 + 3 * 2, 3)  # the 96 px image-sized window, scaled down
    index = json.loads((examples_dir(tmp_path / "cache", model.fingerprint, data.fingerprint)
                        / "mixed4a.json").read_text())
    assert len(index["channels"]) == 512 and len(index["channels"][0]["images"]) == 4
    assert all(box == [0, 0, 96, 96] or 0 <= box[0] < box[2] <= 96
               for ch in index["channels"] for box in ch["boxes"])
