"""Real models end to end: the bundled net on Fashion-MNIST, a random-weight googlenet
(InceptionV1) on a generated ImageFolder, and streaming over a large class."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import massif
from massif.analysis.profile import profile_neurons
from massif.datasets import FashionMNIST, TensorDataset
from massif.hooks import mask
from tests.helpers.cli import MASSIF


@pytest.fixture(scope="module")
def default_graph(bundled):
    return massif.analyze(bundled, benign="Sneaker", target="Sandal", device="cpu")


def test_bundled_model_reaches_90_percent(bundled):
    data = FashionMNIST("test")
    correct = 0
    with torch.no_grad():
        for images, idx in data.batches(range(len(data)), 1000):
            correct += (bundled.module(images).argmax(1) == data.labels[idx]).sum().item()
    assert correct / len(data) >= 0.90


def test_default_pair_is_a_real_attack_with_a_faithful_graph(default_graph):
    g = default_graph
    assert g.benign.n_images == 1000
    assert g.metrics.clean_accuracy > 0.9
    assert g.warnings == []  # a trained model and a strong attack: nothing to warn about
    asr = g.metrics.attack_success_rate
    assert asr[0] == 0.0 and max(asr) > 0.5
    assert g.layers == ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed5a"]
    groups = {n.group for n in g.nodes}
    assert groups == {"suppressed", "shared", "emphasized"}
    f = g.metrics.faithfulness
    assert f.n_masked > 0 and f.random_draws == 5
    # masking what the graph calls emphasized hurts the attack more than random masking ...
    assert f.masked_emphasized_asr < f.masked_random_asr
    # ... but the ASR alone reads 0 because the class goes too; the margin says it is faithful
    assert f.clean_accuracy_emphasized < 0.05 < f.clean_accuracy_random < 0.9
    assert f.margin_emphasized < 0 < f.margin_unmasked < f.margin_random
    assert f.faithful is True
    # every node of a non-first layer has its incoming edges from the previous layer's nodes
    ids = {n.id: n for n in g.nodes}
    for e in g.edges:
        src, dst = ids[e.source], ids[e.target]
        assert g.layers.index(src.layer) + 1 == g.layers.index(dst.layer)
        assert max(e.influence_benign, e.influence_attacked) > 0


def test_readme_divergence_figures_are_the_default_analysis(default_graph):
    """README quotes where the default pair's attacked Sneakers cross; they must be this run's."""
    import re

    from massif.schemas import divergence_layer

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    said = re.search(r"at ε = 3\.5, (\d+)% of the attacked Sneakers have crossed by `(\w+)`, "
                     r"(\d+)% by `(\w+)` \(the divergence layer\) and all by `(\w+)`, while "
                     r"at ε = 1 most cross only at `(\w+)`", " ".join(readme.split()))
    assert said, "README's divergence sentence changed: update this test with it"
    g = default_graph
    crossed = dict(zip(g.layers, g.metrics.divergence.crossed[-1]))
    assert round(100 * crossed[said[2]]) == int(said[1])
    assert round(100 * crossed[said[4]]) == int(said[3]) and g.metrics.divergence_layer == said[4]
    assert round(100 * crossed[said[5]]) == 100
    k1 = g.attack.strengths.index(1.0)
    assert divergence_layer(g.layers, g.metrics.divergence.crossed[k1]) == said[6]


def test_readme_faithfulness_figures_are_the_default_analysis(default_graph):
    """README quotes the default pair's faithfulness check; it must be this run's."""
    import re

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    said = re.search(r"the (\d+) emphasized neurons masked give ASR (\d+)% but leave (\d+)% of "
                     r"the Sneakers right \(as many random ones: ASR (\d+)% at (\d+)%\), while "
                     r"the margin falls from ([\d.]+) to (−?[\d.]+) \(random: ([\d.]+)\)", readme)
    assert said, "README's faithfulness sentence changed: update this test with it"
    f = default_graph.metrics.faithfulness
    assert f.n_masked == int(said[1])
    assert [round(100 * v) for v in (f.masked_emphasized_asr, f.clean_accuracy_emphasized,
                                     f.masked_random_asr, f.clean_accuracy_random)] == \
        [int(said[i]) for i in (2, 3, 4, 5)]
    assert [f"{v:.2f}" for v in (f.margin_unmasked, f.margin_emphasized, f.margin_random)] == \
        [said[6], said[7].replace("−", "-"), said[8]]
    assert f"lowers the target margin on the attacked images by " \
        f"{f.margin_unmasked - f.margin_emphasized:.2f}" in readme


def test_demo_no_serve_prints_the_saved_default_analysis_makes_its_pictures_and_ends(
        default_graph, tmp_path):
    """``massif demo --no-serve`` with the default analysis already in its workspace (this
    module's, the request ``massif demo`` makes: the same key): it uses it, makes the pictures
    of its neurons, prints its summary and where it is, and ends without serving."""
    from massif import AnalysisRequest
    from massif.store import Workspace

    key = AnalysisRequest(benign="Sneaker", target="Sandal", attack="fgm").resolve().key
    ws = Workspace(tmp_path / "ws")
    saved = ws.graph_path(ws.save(default_graph, key))
    stamp = saved.stat().st_mtime_ns
    done = subprocess.run([MASSIF, "demo", "--no-serve", "--workspace", str(ws.root)],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"using the saved analysis in {saved}" in done.stderr
    assert done.stdout.startswith(default_graph.summary())
    assert done.stdout.rstrip().endswith(f"wrote {saved}")
    assert saved.stat().st_mtime_ns == stamp  # used, not computed again
    cache = Path(os.environ["MASSIF_CACHE"])
    assert f"pictures of the graph's neurons are in {cache}" in done.stderr
    g = default_graph
    for n in g.nodes:
        assert (cache / "pictures" / g.model.fingerprint / n.layer / f"{n.channel}.png").is_file()
        assert (cache / "examples" / f"{g.model.fingerprint}-{g.dataset.fingerprint}" / n.layer
                / f"{n.channel}.png").is_file()
    assert "serving" not in done.stdout + done.stderr


def test_emphasized_neurons_raise_the_target_logit_when_kept(bundled, default_graph):
    """Intervention: ablating the emphasized neurons lowers the target logit on attacked
    images, as the graph claims."""
    g = default_graph
    data = FashionMNIST("test")
    idx = data.indices_of(g.benign.index)[:200]
    x = data.load(idx)
    atk = massif.make_attack("fgm")
    adv = atk.perturb(bundled.module, x, torch.full((len(x),), g.target.index),
                      [g.attack.strengths[-1]])[0]
    emphasized: dict[str, list[int]] = {}
    for n in g.nodes:
        if n.group == "emphasized":
            emphasized.setdefault(n.layer, []).append(n.channel)
    with torch.no_grad():
        before = bundled.module(adv)[:, g.target.index].mean()
        with mask(bundled.module, emphasized):
            after = bundled.module(adv)[:, g.target.index].mean()
    assert after < before


def test_fgsm_and_untargeted_pgd_run_on_the_bundled_model(bundled):
    g = massif.analyze(bundled, benign="Trouser", target="Dress", attack="fgsm",
                       max_strength=0.2, steps=3, max_images=64, device="cpu")
    assert g.attack.norm == "linf" and g.attack.strengths == pytest.approx([0, 0.1, 0.2])
    u = massif.analyze(bundled, benign="Trouser", target="Dress", attack="pgd-linf",
                       targeted=False, max_strength=0.2, steps=3, max_images=32, device="cpu")
    assert not u.attack.targeted and u.attack.name == "pgd"
    assert u.metrics.attack_success_rate[-1] >= g.metrics.attack_success_rate[-1] * 0.5


def test_profile_streams_in_batches(bundled):
    """The profile never asks the dataset for more than one batch at a time, and statistics
    over 1,500 images come out of batches of 100."""

    class Counting(TensorDataset):
        biggest = 0

        def load(self, indices):
            Counting.biggest = max(Counting.biggest, len(indices))
            return super().load(indices)

    train = FashionMNIST("train")
    idx = train.indices_of(7)[:1500]
    data = Counting(train.load(idx), [7] * len(idx), train.class_names)
    prof = profile_neurons(bundled, data, list(range(len(idx))), 7, 5, massif.make_attack("fgm"),
                           [0.0, 3.5], batch_size=100)
    assert Counting.biggest == 100
    assert prof.n_images == 1500


def test_googlenet_by_name_with_summit_layer_names(tmp_path):
    """torchvision:googlenet (random weights) on a small generated ImageFolder whose folders
    are ImageNet class names; through the real console script."""
    g = torch.Generator().manual_seed(0)
    for name in ("giant_panda", "armadillo"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            arr = (torch.rand(80, 96, 3, generator=g) * 255).byte().numpy()
            Image.fromarray(arr, "RGB").save(tmp_path / "data" / name / f"{i}.jpg")
    out = tmp_path / "out"
    proc = subprocess.run(
        [MASSIF, "analyze", "--model", "torchvision:googlenet", "--weights", "none",
         "--image-size", "64", "--data", str(tmp_path / "data"), "--benign", "giant panda",
         "--target", "armadillo", "--steps", "3", "--nodes-per-layer", "4", "--no-pictures",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    graph = massif.Graph.load(out / "graph.json")
    assert graph.layers == ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d",
                            "mixed4e", "mixed5a", "mixed5b"]
    assert graph.benign.name == "giant panda" and graph.benign.index == 388
    assert graph.target.index == 363
    assert all(n.id.startswith("mixed") for n in graph.nodes)
    # Random weights: (almost) no image is right, so the graph is said to mean little, in the
    # summary the user reads and in graph.json for the page.
    assert graph.metrics.clean_accuracy < 0.5
    assert any("classifies only" in w for w in graph.warnings)
    assert any("too few images" in w for w in graph.warnings)
    assert "warning: the model classifies only" in proc.stdout


def test_googlenet_offline_default_weights_error_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: DEFAULT needs a download
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with pytest.raises(massif.MassifError, match="weights none or a local state-dict"):
        massif.load_model("torchvision:googlenet")
    assert not list(tmp_path.iterdir())  # no empty hub folders made for nothing


def test_googlenet_default_weights_from_torchs_cache_print_nothing(tmp_path):
    """Weights already in torch's cache load offline, and nothing is printed on stdout (where
    torchvision's own loader writes ``Downloading: ...`` when it fetches)."""
    import torchvision

    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.01)
    url = torchvision.models.GoogLeNet_Weights.DEFAULT.url
    cached = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(net.state_dict(), cached)
    code = ("import massif, torch; m = massif.load_model('torchvision:googlenet'); "
            "w = torch.load(%r, weights_only=True)['conv1.conv.weight']; "
            "assert torch.equal(m.module.net.conv1.conv.weight, w)" % str(cached))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TORCH_HOME": str(tmp_path),
                               "https_proxy": "http://127.0.0.1:9"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "Downloading" not in proc.stderr
