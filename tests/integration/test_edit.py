"""The edit stage: delete neurons, measure the attack (transfer and adaptive), suggest a defense,
export the edited model. Exact numbers on the hand-weighted model of tiny.py; the faithfulness
ordering and the defense on the bundled model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import massif
from massif.analysis.graph import random_masks
from massif.attacks import Attack
from massif.edit import Editor, EditResult, apply_mask
from massif.edit import cut as prefix
from massif.edit.defense import emphasized_order
from massif.edit.estimate import estimate_deletions
from massif.edit.session import Mask
from massif.hooks import frozen, mask
from tests.helpers.cli import run_massif
from tests.helpers.tiny import Planted, planted_data, planted_model

STRENGTHS = [3.5 * i / 7 for i in range(8)]


# ------------------------------------------------------------------ the planted model, by hand


@pytest.fixture()
def planted():
    model, data = planted_model(), planted_data()
    return Editor(model, data, benign="benign", target="target", strengths=STRENGTHS,
                  device="cpu")


def fgm_path(grad_x1: bool = True):
    """Targeted FGM from x = (1, 0.2): logits (x0 + .5, x1 + .4, 0) (tiny.py).

    d = -∇ CE(z, target) = (-p_benign, 1 - p_target) (the x1 part is 0 once l1:1 is masked,
    ``grad_x1=False``); x_k = clip(x + ε_k d / |d|)."""
    z = torch.tensor([1.5, 0.6 if grad_x1 else 0.4, 0.0])
    p = z.softmax(0)
    d = torch.tensor([-float(p[0]), (1 - float(p[1])) if grad_x1 else 0.0])
    u = d / d.norm()
    return [(min(max(1 + e * float(u[0]), 0.0), 1.0), min(max(0.2 + e * float(u[1]), 0.0), 1.0))
            for e in STRENGTHS]


def test_masking_the_target_feature_stops_the_attack_exactly(planted):
    r = planted.evaluate(["l1:1"])
    # Before: the attack succeeds where z_t = x1 + .4 beats z_b = x0 + .5.
    before = [1.0 if x1 + 0.4 > x0 + 0.5 else 0.0 for x0, x1 in fgm_path()]
    assert before[-1] == 1.0 and before[1] == 0.0
    assert r.transfer_asr.before == pytest.approx(before)
    assert r.adaptive_asr.before == pytest.approx(before)
    # After: z_t = 0 + .4 < .5 <= z_b for every image in [0, 1]²: no attack can succeed.
    assert r.transfer_asr.after == [0.0] * 8
    assert r.adaptive_asr.after == [0.0] * 8
    assert r.n_images == 6 and r.n_correct.before == r.n_correct.after == 6
    assert r.clean_accuracy_benign.before == r.clean_accuracy_benign.after == 1.0
    # All classes (6 benign, 6 target images): the target images (0, 1) now score .4 < .5.
    assert r.n_sample == 12
    assert r.clean_accuracy_all.before == 1.0 and r.clean_accuracy_all.after == 0.5
    assert r.mask == ["l1:1"] and r.mode == "zero" and r.attack == "fgm" and r.targeted
    # The same through the second layer's copy of the feature.
    r2 = planted.evaluate("l2:1")
    assert r2.adaptive_asr.after == [0.0] * 8 and r2.clean_accuracy_all.after == 0.5


def test_mean_mode_fills_the_benign_mean(planted):
    assert planted.session.means["l1"].tolist() == pytest.approx([1.0, 0.2, 0.5])
    r = planted.evaluate(["l1:1"], mode="mean")
    assert r.mode == "mean"
    # l1:1 is held at 0.2, so z_t = 0.6 and the attack must push x0 below 0.1.
    transfer = [1.0 if x0 < 0.1 else 0.0 for x0, _ in fgm_path()]
    # The fresh attack's gradient has no x1 part: d = (-p_b, 0), x0 = 1 - ε.
    adaptive = [1.0 if 1 - e < 0.1 else 0.0 for e in STRENGTHS]
    assert r.transfer_asr.after == pytest.approx(transfer)
    assert r.adaptive_asr.after == pytest.approx(adaptive)
    assert transfer != adaptive  # the fresh attack finds ε = 1.0, the stored one does not
    # The target images (0, 1) keep z_t = .6 > .5 = z_b, unlike with zero.
    assert r.clean_accuracy_all.after == 1.0
    assert r != planted.evaluate(["l1:1"], mode="zero")


def test_transfer_only_then_adaptive_give_the_same_numbers(planted):
    quick = planted.evaluate(["l1:1"], adaptive=False)
    assert quick.adaptive_asr is None and "—" in quick.table()
    full = planted.evaluate(["l1:1"])
    assert quick.transfer_asr == full.transfer_asr
    assert quick.clean_accuracy_all == full.clean_accuracy_all


def test_result_round_trips_and_reads_as_a_table(planted):
    r = planted.evaluate(["l1:1", "l1:1"])  # duplicates are fine
    assert r.mask == ["l1:1"]
    assert EditResult.model_validate_json(r.model_dump_json()) == r
    table = r.table()
    assert "benign → target" in table and "l1:1" in table and "adaptive ASR" in table
    assert len(table.splitlines()) == 10 + len(STRENGTHS)
    assert "100.0%" in table and "50.0%" in table


def test_pgd_through_the_edited_model(planted):
    model, data = planted_model(), planted_data()
    ed = Editor(model, data, benign=0, target=1, attack="pgd-l2", strengths=[0, 1.0, 3.5],
                device="cpu")
    r = ed.evaluate(["l1:1"])
    assert r.attack == "pgd-l2"
    assert r.adaptive_asr.before[-1] == 1.0
    assert r.adaptive_asr.after == [0.0, 0.0, 0.0] and r.transfer_asr.after == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ hooks never leak


def all_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_hooks_are_removed_and_flags_restored(monkeypatch, tmp_path):
    model, data = planted_model(), planted_data()
    model.module.train()
    model.module.l1[0].weight.requires_grad_(True)
    model.module.head.bias.requires_grad_(False)
    # a hook an analysis running on the shared model has at this moment: not copied
    handle = model.module.l2.register_forward_hook(lambda *a: None)
    ed = Editor(model, data, benign=0, target=1, strengths=STRENGTHS, device="cpu")
    handle.remove()
    assert ed.net is not model.module and all_hooks(ed.net) == 0
    flags = [p.requires_grad for p in ed.net.parameters()]

    def check() -> None:
        for net in (model.module, ed.net):
            assert all_hooks(net) == 0
        assert model.module.training and ed.net.training
        assert model.module.l1[0].weight.requires_grad and not model.module.head.bias.requires_grad
        assert [p.requires_grad for p in ed.net.parameters()] == flags

    ed.evaluate(["l1:1"])
    check()
    ed.suggest_defense(1, candidates=["l1:1", "l2:2"])
    check()
    ed.export(["l1:1"], tmp_path / "edited.pt")
    check()

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Attack, "from_direction", boom)
    with pytest.raises(RuntimeError, match="boom"):
        ed.evaluate(["l1:2"])
    check()
    with pytest.raises(RuntimeError, match="boom"):
        with ed.edited(["l1:1"]) as net:
            assert all_hooks(net) == 1 and not net.training
            raise RuntimeError("boom")
    check()


# ------------------------------------------------------------------ bad requests


@pytest.mark.parametrize("neurons, words", [
    (["l9:1"], "unknown layer 'l9'"),
    (["l:1"], "did you mean: l2, l1"),
    (["l1:7"], "layer l1 has channels 0..2"),
    (["nonsense"], "layer:channel"),
    (["l1:-1"], "layer:channel"),
    (["l1:x"], "layer:channel"),
    ([], "empty"),
    ("", "empty"),
    ([" ", ""], "empty"),
    (["l1:0", "l1:1", "l1:2"], "whole layer l1"),
    ("l2:0,l2:1,l2:2,l1:0", "whole layer l2"),
])
def test_bad_masks_give_one_clear_line(planted, neurons, words, tmp_path):
    with pytest.raises(massif.MassifError, match=words) as info:
        planted.evaluate(neurons)
    assert "\n" not in str(info.value)
    with pytest.raises(massif.MassifError):
        planted.export(neurons, tmp_path / "edited.pt")
    assert not (tmp_path / "edited.pt").exists()


def test_other_bad_requests(planted, tmp_path):
    with pytest.raises(massif.MassifError, match="zero or mean"):
        planted.evaluate(["l1:1"], mode="median")
    with pytest.raises(massif.MassifError, match="1 to 64"):
        planted.suggest_defense(0, candidates=["l1:1"])
    with pytest.raises(massif.MassifError, match="1 to 64"):
        planted.suggest_defense(100_000, candidates=["l1:1"])
    with pytest.raises(massif.MassifError, match="candidate"):
        planted.suggest_defense(2)
    with pytest.raises(massif.MassifError, match="no candidate"):
        planted.suggest_defense(2, candidates=[])
    with pytest.raises(massif.MassifError, match="unknown layer"):
        planted.suggest_defense(2, candidates=["l3:1"])
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(massif.MassifError, match="cannot load"):
        apply_mask(Planted(), tmp_path / "junk.pt")
    with pytest.raises(massif.MassifError, match="not an edited model"):
        apply_mask(Planted(), {"state_dict": {}})
    with pytest.raises(massif.MassifError, match="is a folder"):
        planted.export(["l1:1"], tmp_path)  # a folder (or a device) is never replaced
    with pytest.raises(massif.MassifError, match="is a file"):
        planted.export(["l1:1"], tmp_path / "junk.pt" / "x.pt")
    with pytest.raises(massif.MassifError, match="list of neuron ids"):
        planted.evaluate(5)
    with pytest.raises(massif.MassifError, match="must be a Graph"):
        Editor.from_graph(planted_model(), None, None)
    with pytest.raises(massif.MassifError, match="fresh nn.Module"):
        planted.export(["l1:1"], tmp_path / "edited.pt")
        apply_mask(None, tmp_path / "edited.pt")
    # candidates as one comma-separated string, as masks take them (not one per character)
    found = planted.suggest_defense(1, candidates="l1:1, l2:2", random_draws=1)
    assert found.n_candidates == 2


def test_from_graph_checks_the_model(planted):
    model, data = planted_model(), planted_data()
    graph = massif.analyze(model, data, benign="benign", target="target", device="cpu")
    ed = Editor.from_graph(model, data, graph, device="cpu")
    assert ed.strengths == graph.attack.strengths and ed.graph is graph
    r = ed.evaluate(["l1:1"])
    assert r.transfer_asr.before == pytest.approx(graph.metrics.attack_success_rate)
    assert r.clean_accuracy_benign.before == graph.metrics.clean_accuracy
    other = Planted()
    with torch.no_grad():
        other.head.bias.fill_(0.01)
    changed = massif.load_model(other, layers=["l1", "l2"], image_size=1, channels=2,
                                class_names=data.class_names)
    with pytest.raises(massif.MassifError, match="not Planted|made with model"):
        Editor.from_graph(changed, data, graph, device="cpu")


# ------------------------------------------------------------------ export


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_export_reloads_into_a_fresh_module_with_the_same_outputs(planted, tmp_path, mode):
    path = planted.export(["l1:1", "l2:0"], tmp_path / "edited.pt", mode=mode)
    state = torch.load(path, weights_only=True)
    assert state["mask"] == ["l1:1", "l2:0"] and state["mode"] == mode
    assert set(state["state_dict"]) == set(Planted().state_dict())
    assert state["layers"] == {"l1": "l1", "l2": "l2"}
    assert (set(state["values"]) == {"l1", "l2"}) == (mode == "mean")
    fresh = Planted()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    edited = apply_mask(fresh, path)
    x = torch.rand(16, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    with planted.edited(["l1:1", "l2:0"], mode=mode) as net:
        want = net(x)
    assert torch.equal(edited(x), want)
    assert not torch.equal(Planted()(x), want)
    assert all_hooks(fresh) == 0  # hooks only during a forward pass


# ------------------------------------------------------------------ the cut (prefix.py)


class Skip(nn.Module):
    """A residual path around ``b``: cutting after ``b`` must carry ``a`` along."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        c = self.c(self.b(a)) + a
        return self.fc(c.mean((2, 3)))


def test_the_cut_carries_skip_connections_and_fires_mask_hooks():
    net = Skip().eval()
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    graph = prefix.trace(net, ["a", "b", "c"])
    cut = prefix.cut(net, graph, "b", ["a", "b", "c"])
    assert cut.after == {"c"} and cut.covers({"c"}) and not cut.covers({"b"})
    parts = cut.prefix(x)
    assert len(parts) == 2  # b's output and the skip a
    assert prefix.check(cut, net, x)
    with torch.no_grad(), mask(net, {"c": [1, 2]}):
        assert torch.allclose(cut.suffix(*parts), net(x), atol=1e-6)
        assert not torch.allclose(cut.suffix(*parts), Skip().eval()(x), atol=1e-3)


def test_a_cut_before_a_layer_runs_it_in_the_suffix_with_its_mask():
    net = Skip().eval()
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    graph = prefix.trace(net, ["a", "b", "c"])
    cut = prefix.cut(net, graph, "b", ["a", "b", "c"], before=True)
    assert cut.before and cut.after == {"b", "c"} and cut.covers({"b", "c"})
    assert not cut.covers({"a"})
    assert cut.only_input  # a's output: b's input and the skip are one value
    parts = cut.prefix(x)
    assert len(parts) == 1
    assert torch.equal(parts[0], net.a(x))
    assert prefix.check(cut, net, x)
    with torch.no_grad(), mask(net, {"b": [0, 3]}):
        masked = net(x)
        assert torch.allclose(cut.suffix(*parts), masked, atol=1e-6)
    assert not torch.allclose(masked, net(x), atol=1e-3)
    before_c = prefix.cut(net, graph, "c", ["a", "b", "c"], before=True)
    assert not before_c.only_input and len(before_c.prefix(x)) == 2  # c's input and the skip
    assert prefix.check(before_c, net, x)


def test_a_cut_whose_rest_changes_its_input_in_place_is_refused():
    # the first layer after the cut is an in-place LeakyReLU: the second mask run on the same
    # prefix outputs would see them changed, so the cut must not be used
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 3, 3)
            self.b = nn.LeakyReLU(0.1, inplace=True)
            self.c = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.b(self.a(x))).mean((2, 3))

    net = InPlace().eval()
    x = torch.rand(3, 1, 7, 7) - 0.5
    graph = prefix.trace(net, ["a", "b", "c"])
    for path, before in (("b", True), ("a", False)):
        cut = prefix.cut(net, graph, path, ["a", "b", "c"], before=before)
        assert cut is not None and not prefix.check(cut, net, x)
    assert prefix.check(prefix.cut(net, graph, "b", ["a", "b", "c"]), net, x)  # after b: fine


def test_googlenet_cuts_before_and_after_every_layer():
    # googlenet's wrapper once traced to ``out.logits`` (an fx proxy has every attribute), so
    # no cut of it ever checked and its editor always ran the whole model
    model = massif.load_model("torchvision:googlenet", weights="none", image_size=64)
    net, paths = model.module.eval(), list(model.layers.values())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    graph = prefix.trace(net, paths)
    assert graph is not None
    for path in paths:
        for before in (False, True):
            cut = prefix.cut(net, graph, path, paths, before=before)
            assert cut is not None and prefix.check(cut, net, x), (path, before)
            assert cut.only_input == before  # a chain of blocks: each reads the one before


def test_an_untraceable_model_runs_whole():
    class Branchy(Skip):
        def forward(self, x):
            a = self.a(x)
            if a.sum() > 0:  # data-dependent control flow: fx cannot trace it
                a = a * 1.0
            return self.fc((self.c(self.b(a)) + a).mean((2, 3)))

    assert prefix.trace(Branchy(), ["a", "b", "c"]) is None


# ------------------------------------------------------------------ the bundled model


@pytest.fixture(scope="module")
def bundled_pair(bundled):
    model = bundled
    data = massif.load_dataset("fashion-mnist", 28, 1)
    graph = massif.analyze(model, data, benign="Sneaker", target="Sandal", max_images=200,
                           device="cpu")
    editor = Editor.from_graph(model, data, graph, device="cpu", sample_size=300)
    return model, graph, editor


def test_before_numbers_are_the_analysis_numbers(bundled_pair):
    _, graph, ed = bundled_pair
    assert len(ed.session.images) == graph.benign.n_images == 200
    r = ed.evaluate([graph.nodes[-1].id], adaptive=False)
    assert r.clean_accuracy_benign.before == pytest.approx(graph.metrics.clean_accuracy)
    n = r.n_correct.before
    for got, want in zip(r.transfer_asr.before, graph.metrics.attack_success_rate):
        assert abs(got - want) <= 1.5 / n  # the same images and attack; at most one image off


def test_emphasized_first_masking_beats_random_masking(bundled_pair):
    """The faithfulness ordering (docs/method.md) on the fresh attack: deleting the four
    most vulnerable emphasized neurons lowers the adaptive ASR at ε_max more than deleting as
    many random neurons of the same layers, averaged over 5 draws."""
    model, graph, ed = bundled_pair
    ids = emphasized_order(graph)[:4]
    assert len(ids) == 4
    emphasized: dict[str, list[int]] = {}
    for nid in ids:
        layer, _, channel = nid.partition(":")
        emphasized.setdefault(layer, []).append(int(channel))
    emph = ed.evaluate(ids)
    assert emph.clean_accuracy_benign.after > 0.5  # not won by breaking the benign class
    rand = [ed.evaluate([f"{lay}:{c}" for lay, chans in draw.items() for c in chans])
            for draw in random_masks(emphasized, model.layer_channels, 5, seed=1)]
    before = emph.adaptive_asr.before[-1]
    mean_random = sum(r.adaptive_asr.after[-1] for r in rand) / len(rand)
    assert emph.adaptive_asr.after[-1] < mean_random
    assert emph.adaptive_asr.after[-1] < before - 0.05
    assert emph.transfer_asr.after[-1] < sum(r.transfer_asr.after[-1] for r in rand) / 5


def test_the_cut_changes_no_number(bundled_pair):
    _, graph, ed = bundled_pair
    m = ed.parse(["mixed4b:3", "mixed5a:7"])
    with_cut = ed.session.measure(m, adaptive=False)
    assert ed.session.cut_for({"mixed4b", "mixed5a"}) is not None
    plain = Editor.from_graph(massif.load_model("bundled"), None, graph, device="cpu",
                              sample_size=300, cache_mb=0)  # no cut: the whole model each time
    whole = plain.session.measure(m, adaptive=False)
    assert plain.session.cut_for({"mixed4b", "mixed5a"}) is None
    assert abs(with_cut.n_correct - whole.n_correct) <= 1
    assert all(abs(a - b) <= 1 for a, b in zip(with_cut.transfer, whole.transfer))
    assert abs(with_cut.sample_correct - whole.sample_correct) <= 1


def test_batched_masks_equal_one_mask_at_a_time(bundled_pair):
    """``measure_many`` (one block of rows per mask) gives each mask's own numbers."""
    _, graph, ed = bundled_pair
    ses = ed.session
    masks = [ses.parse(ids) for ids in (["mixed4a:1"], ["mixed4b:3", "mixed5a:7"],
                                         ["mixed3b:2", "mixed4a:5"])]
    masks.append(ses.parse(["mixed4a:1"], mode="mean"))
    k = len(ses.strengths) - 1
    alone = [ses.measure(m, transfer=False, ks=[k], n_images=100, n_sample=100) for m in masks]
    kept = ses.max_rows
    try:
        ses.max_rows = 4 * ses.batch_size  # four masks in every batch
        many = ses.measure_many(masks, ks=[k], n_images=100, n_sample=100)
    finally:
        ses.max_rows = kept
    for a, b in zip(alone, many):
        assert (a.n_correct, a.sample_correct) == (b.n_correct, b.sample_correct)
        assert abs(a.adaptive[0] - b.adaptive[0]) <= 1  # float summation order at a boundary


def test_images_the_masks_share_run_the_part_before_them_once_with_the_same_numbers(
        bundled_pair):
    """Without a cached cut, ``measure_many`` runs the sample (and, for PGD, the clean images)
    through the layers before the masked ones once per batch and the rest once per mask
    (``ActivationCache.split``): the counts are those of the whole model run per mask."""
    _, _, ed = bundled_pair
    masks = [["mixed4a:1"], ["mixed4b:3", "mixed5a:7"], ["mixed4a:5"]]
    split, whole = ed.fork().session, ed.fork().session
    whole.cache.cache_bytes = 0  # no cut of any kind: the whole model for every row
    parsed = [[ses.parse(ids) for ids in masks] for ses in (split, whole)]
    cut = split.cache.split({split.paths["mixed4a"], split.paths["mixed4b"]}, split.images[:8])
    assert cut is not None and cut.path == split.paths["mixed3b"]
    assert whole.cache.split({whole.paths["mixed4a"]}, whole.images[:8]) is None
    got, want = (ses.measure_many(ps, n_images=100, n_sample=300, new_cut=False)
                 for ses, ps in zip((split, whole), parsed))
    assert split.cache.cached is None  # nothing was cached: the split keeps no activations
    for a, b in zip(got, want):
        assert abs(a.sample_correct - b.sample_correct) <= 1  # float order at a boundary
        assert (a.n_correct, a.adaptive) == (b.n_correct, b.adaptive)
    # The layer before the cut sees each sample image once with the split, once per mask without.
    for ses, ps, per_image in ((split, parsed[0], 1), (whole, parsed[1], len(masks))):
        rows: list[int] = []
        handle = ses.net.get_submodule(ses.paths["mixed3b"]).register_forward_hook(
            lambda _m, _i, o, rows=rows: rows.append(o.shape[0]))
        try:
            ses.measure_many(ps, n_images=0, n_sample=300, new_cut=False)
        finally:
            handle.remove()
        assert sum(rows) == 300 * per_image


def test_defense_can_be_cancelled(bundled_pair):
    from massif.edit.session import Cancelled

    _, graph, ed = bundled_pair
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        ed.fork().suggest_defense(3, graph=graph, cancelled=cancelled)
    assert ed.evaluate(["mixed4a:1"], adaptive=False).mask == ["mixed4a:1"]  # still usable


def test_greedy_defense_beats_random_and_is_nested(bundled_pair):
    _, graph, ed = bundled_pair
    candidates = [n.id for n in graph.nodes
                  if n.group != "suppressed" and n.layer in ("mixed4b", "mixed5a")]
    found: list[list[str]] = []
    d = ed.suggest_defense(2, candidates=candidates, graph=graph, random_draws=3,
                           search_images=100, found=found.append)
    # each pick is announced as soon as the search makes it (the page lists them live)
    assert found == [step.mask for step in d.greedy]
    assert d.n_candidates == len(candidates) and d.n_search_images == 100
    assert 1 <= len(d.greedy) <= 2
    for i, step in enumerate(d.greedy):
        assert step.size == i + 1 == len(step.mask) and step.mask[-1] == step.added
        assert step.mask[:i] == (d.greedy[i - 1].mask if i else [])
        assert step.added in candidates
    assert [p.size for p in d.random] == [s.size for s in d.greedy]
    last = d.greedy[-1]
    assert last.adaptive_asr <= d.random[-1].adaptive_asr
    assert last.adaptive_asr < d.before.adaptive_asr
    for draws in d.random[-1].masks:  # same layers as the greedy picks, never the picks
        assert sorted(m.split(":")[0] for m in draws) == sorted(
            m.split(":")[0] for m in last.mask)
        assert not set(draws) & set(last.mask)
    assert d.top_emphasized and d.top_emphasized[0].size == 1
    assert d.top_emphasized[0].mask[0] == max(
        (n for n in graph.nodes if n.group == "emphasized"),
        key=lambda n: (n.vulnerability, n.importance_target[-1])).id
    assert math.isclose(d.epsilon, 3.5)
    assert "greedy" in d.table() and last.added in d.table()


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_the_estimate_counts_what_measuring_counts(bundled_pair, mode):
    _, graph, ed = bundled_pair
    s = ed.session
    for ids in ([], ["mixed4a:3", "mixed5a:7"]):
        m = s.parse(ids, mode) if ids else Mask({}, mode)
        est = estimate_deletions(s, m, 120, 150)
        (got,) = s.measure_many([m], n_images=120, n_sample=150)
        assert est.benign_accuracy == got.accuracy
        assert est.accuracy == got.sample_accuracy
        # the attack's direction is summed in another batch shape: a boundary image may differ
        assert abs(est.asr - got.rates(got.adaptive)[0]) * got.n_correct <= 1
        assert est.clean.shape == (120,) and est.sample.shape == (150,)


def test_the_estimate_of_a_last_layer_deletion_is_exact_while_the_runner_up_stays(
        bundled_pair):
    # The logits are linear in mixed5a (global average, then fc): deleting one of its channels
    # moves z_y − z_j by exactly the first-order estimate for every j, so the estimated margin
    # (true class over runner-up) is the real one wherever the runner-up stays the same.
    _, _, ed = bundled_pair
    s = ed.session
    est = estimate_deletions(s, Mask({}), 50, 300)
    x, y = s.sample_images[:300], s.sample_labels[:300]
    rows = torch.arange(300)

    def runner_up(z):
        other = z.clone()
        other[rows, y] = float("-inf")
        return other.argmax(1), z[rows, y] - other.amax(1)

    with frozen(ed.net), torch.no_grad():  # eval mode: the net has dropout
        before, margin = runner_up(ed.net(x))
    assert torch.allclose(margin, est.sample, atol=1e-5)
    moves = est.moves["mixed5a"][2]
    for c in moves.abs().sum(0).argsort(descending=True)[:4].tolist():
        with ed.edited([f"mixed5a:{c}"]) as net, torch.no_grad():
            after, real = runner_up(net(x))
        same = after == before
        assert same.float().mean() > 0.5  # the comparison covers most images
        assert moves[:, c].abs().max() > 0.1  # a deletion that moves the margins
        assert torch.allclose(est.sample[same] + moves[same, c], real[same], atol=1e-4)


def test_the_shortlist_finds_the_plain_search_picks_and_the_suggestion_comes_first(
        bundled_pair):
    _, graph, ed = bundled_pair
    candidates = [n.id for n in graph.nodes if n.layer in ("mixed3b", "mixed4a", "mixed4b")]
    early: list = []
    kw = dict(candidates=candidates, graph=graph, random_draws=2, search_images=100)
    short = ed.suggest_defense(2, shortlist=4, suggested=early.append, **kw)
    plain = ed.suggest_defense(2, shortlist=None, **kw)
    assert len(candidates) > 4 and short.shortlist == 4 and plain.shortlist is None
    assert [s.added for s in short.greedy] == [s.added for s in plain.greedy]
    assert short.greedy == plain.greedy and short.random == plain.random
    # the suggestion, before its baselines: the same path and numbers, nothing else yet
    (first,) = early
    assert not first.complete and short.complete
    assert first.greedy == short.greedy and first.before == short.before
    assert first.random == [] and first.top_emphasized == []
    # size 0 is the session's unedited measurement: what measuring the empty mask gives
    (empty,) = ed.session.measure_many([Mask({})])
    assert short.before.clean_accuracy == empty.sample_accuracy
    assert short.before.clean_accuracy_benign == empty.accuracy
    assert abs(short.before.adaptive_asr - empty.rates(empty.adaptive)[0]) * empty.n_correct <= 1


def test_bundled_export_reloads_into_a_fresh_net(bundled_pair, tmp_path):
    from massif.bundled.net import FashionInception

    _, graph, ed = bundled_pair
    ids = [n.id for n in graph.nodes if n.group == "emphasized"][:3]
    path = ed.export(ids, tmp_path / "bundled-edited.pt", mode="mean")
    edited = apply_mask(FashionInception().eval(), path)
    x = ed.session.images[:32]
    with ed.edited(ids, mode="mean") as net, torch.no_grad():
        want = net(x)
        plain = net.fc.weight.clone()
    with torch.no_grad():
        got = edited(x)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.equal(edited.net.fc.weight, plain)


def test_massif_edit_graph_defense_exports_the_suggested_mask(bundled_pair, tmp_path):
    """``massif edit --graph G --defense 2 --export F``: the graph's pair, attack, strengths,
    images and neurons (the candidates), a suggestion that lowers the attack, and the edited
    model of the suggested mask written to F."""
    from massif.bundled.net import FashionInception
    from massif.edit.defense import DefenseResult

    _, graph, ed = bundled_pair
    graph.save(tmp_path / "graph.json")
    out = tmp_path / "defended.pt"
    done = run_massif("edit", "--graph", str(tmp_path / "graph.json"), "--defense", "2",
                      "--export", str(out), "--json", "--device", "cpu", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    d = DefenseResult.model_validate_json(done.stdout)
    assert d.n_images == graph.benign.n_images == 200  # the graph's images, not the class's
    assert d.epsilon == graph.attack.strengths[-1] and d.n_candidates == len(graph.nodes)
    n_correct = round(graph.metrics.clean_accuracy * 200)
    assert abs(d.before.adaptive_asr - graph.metrics.attack_success_rate[-1]) <= 1.5 / n_correct
    assert 1 <= len(d.greedy) <= 2 and d.greedy[-1].adaptive_asr < d.before.adaptive_asr
    mask = d.greedy[-1].mask
    assert set(mask) <= {n.id for n in graph.nodes}
    assert f"wrote the edited model ({len(mask)} neurons deleted) to {out}" in done.stderr
    saved = torch.load(out, weights_only=True)
    assert saved["mask"] == mask and saved["mode"] == "zero"
    edited = apply_mask(FashionInception().eval(), out)
    x = ed.session.images[:16]
    with ed.edited(mask) as net, torch.no_grad():
        want = net(x)
    with torch.no_grad():
        assert torch.allclose(edited(x), want, atol=1e-5)


def test_massif_edit_graph_mask_measures_the_graphs_images(bundled_pair, tmp_path):
    """``massif edit --graph G --mask M``: what the Python editor of the same graph measures
    (all but the all-class sample's size, which the command leaves at its default)."""
    _, graph, ed = bundled_pair
    graph.save(tmp_path / "graph.json")
    mask = [n.id for n in graph.nodes if n.group == "emphasized"][:2]
    done = run_massif("edit", "--graph", str(tmp_path / "graph.json"), "--mask", ",".join(mask),
                      "--json", "--device", "cpu", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = EditResult.model_validate_json(done.stdout)
    want = ed.evaluate(mask)
    assert got.n_images == 200 and got.strengths == graph.attack.strengths
    same = ("mask", "benign", "target", "attack", "strengths", "n_images", "n_correct",
            "clean_accuracy_benign", "transfer_asr", "adaptive_asr")
    assert got.model_dump(include=set(same)) == want.model_dump(include=set(same))
