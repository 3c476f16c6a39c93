"""Influence and importance against independent computations on a random conv net."""

import pytest
import torch

import massif
from massif.analysis.influence import accumulate_influence
from massif.analysis.profile import attacked, profile_edges, profile_neurons
from massif.attacks import make_attack
from massif.datasets import TensorDataset
from massif.hooks import concat_parts, edge_of, frozen, homogeneous_path, mask, record, source_conv
from tests.helpers.tiny import Branchy, SmallConv


def test_influence_matches_a_jacobian_oracle():
    torch.manual_seed(1)
    net = SmallConv(seed=3).eval()
    x = torch.rand(4, 1, 8, 8)
    nodes = {"c2": [0, 3]}
    sums = {"c2": torch.zeros(2, 4, dtype=torch.float64)}
    with record(net, {"c1": "c1", "c2": "c2"}) as acts:
        net(x.requires_grad_(True))
        accumulate_influence(["c1", "c2"], acts, nodes, sums)
    # oracle: treat c1's output as the input of c2 and take the full Jacobian per image
    expected = torch.zeros(2, 4, dtype=torch.float64)
    for b in range(4):
        a1 = net.c1(x[b : b + 1]).detach()
        for row, ch in enumerate(nodes["c2"]):
            jac = torch.autograd.functional.jacobian(
                lambda a: net.c2(a)[0, ch].amax(), a1)
            expected[row] += (a1 * jac).sum((0, 2, 3)).double()
    assert torch.allclose(sums["c2"], expected, atol=1e-5)


def influence(net, layers, x, nodes, use_parts, batch_nodes=None):
    sums = {}
    parts = {} if use_parts else None
    with frozen(net), record(net, {lay: lay for lay in layers}, parts) as acts:
        net(x.clone().requires_grad_(True))
        for prev, lay in zip(layers, layers[1:]):
            sums[lay] = torch.zeros(len(nodes.get(lay, [])), acts[prev].shape[1],
                                    dtype=torch.float64)
        found = {lay: concat_parts(acts[lay], parts[lay]) for lay in layers} if parts else {}
        accumulate_influence(layers, acts, nodes, sums, parts, batch_nodes=batch_nodes)
    return sums, found


def test_branches_of_a_concatenating_layer_are_found_exactly():
    net = Branchy(seed=4)
    x = torch.rand(3, 1, 8, 8)
    _, found = influence(net, ["c1", "b1", "b2"], x, {}, True)
    assert found["c1"] is None  # a plain conv: nothing concatenated
    assert [off for off, _ in found["b1"]] == [0, 2, 5]  # the three branches, in order
    assert [t.shape[1] for _, t in found["b1"]] == [2, 3, 2]
    assert found["b2"] is None  # one input of its cat is not a child's output


def test_influence_from_the_branch_equals_the_whole_layer():
    torch.manual_seed(7)
    net = Branchy(seed=6)
    x = torch.rand(5, 1, 8, 8)
    nodes = {"b1": [0, 1, 2, 4, 5, 6], "b2": [0, 3, 6]}
    fast, _ = influence(net, ["c1", "b1", "b2"], x, nodes, True)
    plain, _ = influence(net, ["c1", "b1", "b2"], x, nodes, False)
    for lay in ("b1", "b2"):  # (the shortcuts sum in another order: float rounding only)
        assert torch.allclose(fast[lay], plain[lay], rtol=1e-6,
                              atol=1e-6 * float(plain[lay].abs().max()))
        assert fast[lay].abs().sum() > 0
    # and both equal a per-image Jacobian of the block (node b1:4 sits in the second branch)
    a1 = net.c1(x).detach()
    jac = torch.autograd.functional.jacobian(lambda a: net.b1(a)[:, 4].flatten(1).amax(1).sum(), a1)
    assert torch.allclose(fast["b1"][3], (a1 * jac).sum((0, 2, 3)).double(), atol=1e-5)


def test_influence_on_googlenet_blocks_is_unchanged_by_the_branch_shortcut():
    model = massif.load_model("torchvision:googlenet", weights="none", image_size=64)
    layers = list(model.layers)
    x = torch.rand(2, 3, 64, 64)
    nodes = {lay: [0, model.layer_channels[lay] // 2, model.layer_channels[lay] - 1]
             for lay in layers}
    net = model.module
    sums = {}
    for use_parts in (True, False):
        parts = {} if use_parts else None
        got = {lay: torch.zeros(3, model.layer_channels[prev], dtype=torch.float64)
               for prev, lay in zip(layers, layers[1:])}
        with frozen(net), record(net, model.layers, parts) as acts:
            net(x.clone().requires_grad_(True))
            if parts:
                assert all(concat_parts(acts[lay], parts[lay]) for lay in layers)
            accumulate_influence(layers, acts, nodes, got, parts)
        sums[use_parts] = got
    for lay in layers[1:]:  # (the shortcuts sum in another order: float rounding only)
        plain = sums[False][lay]
        assert torch.allclose(sums[True][lay], plain, rtol=1e-6,
                              atol=1e-6 * float(plain.abs().max()))
        assert sums[True][lay].abs().sum() > 0


def test_googlenet_branches_go_through_their_last_convolution_alone():
    # every branch of every block ends in conv → batch norm → ReLU (torchvision's BasicConv2d),
    # so the shortcut of accumulate_influence applies to every node of the test above
    model = massif.load_model("torchvision:googlenet", weights="none", image_size=64)
    net, parts = model.module, {}
    with frozen(net), record(net, model.layers, parts) as acts:
        net(torch.rand(1, 3, 64, 64).requires_grad_(True))
        for lay in model.layers:
            branches = concat_parts(acts[lay], parts[lay])
            convs = [source_conv(t) for _, t in branches]
            assert all(c is not None for c in convs)
            assert [c._saved_weight.shape[0] for c in convs] == [t.shape[1] for _, t in branches]
        assert source_conv(acts["mixed3a"]) is None  # the block's output: a cat of four


class Stem(torch.nn.Module):
    """A ResNet-like stem recorded layer by layer (conv1, bn1, an in-place ReLU, a pool), then
    a branch ending in a strided, dilated conv (reached through a max pool and a 1×1 reduce)
    and a strided conv reading an average pool of the block's output: odd sizes, so output
    sizes are ambiguous."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        nn = torch.nn
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.relu, self.pool = nn.ReLU(inplace=True), nn.MaxPool2d(2)
        self.block = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(4, 6, 1),
                                   nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2, dilation=2, padding=1),
                                   nn.BatchNorm2d(5), nn.ReLU())
        self.head = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1),
                                  nn.Conv2d(5, 4, 3, stride=2, padding=1), nn.Tanh())
        self.fc = nn.Linear(4 * 2 * 2, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            for bn in (self.bn1, self.block[4]):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.head(self.block(h)).flatten(1))


def test_influence_between_consecutive_layers_of_one_chain_matches_a_jacobian_oracle():
    # bn1's channels come from conv1, whose output is the previous layer: no shortcut may
    # route them through conv1 (it would find no path and give zero); the strided, dilated
    # convs must give the oracle's numbers through the shortcut
    torch.manual_seed(5)
    net = Stem(seed=8).eval()
    x = torch.rand(3, 1, 15, 15)
    layers = ["conv1", "bn1", "relu", "pool", "block", "head"]
    # (the in-place ReLU changes bn1's output after it is recorded: what the layer shows)
    seg = {"bn1": lambda a: torch.relu(net.bn1(a)), "relu": torch.relu, "pool": net.pool,
           "block": net.block, "head": net.head}
    nodes = {"bn1": [0, 3], "relu": [0, 3], "pool": [0, 3], "block": [0, 1, 3], "head": [1, 3]}
    for batch_nodes in (None, 2):
        got, _ = influence(net, layers, x, nodes, True, batch_nodes=batch_nodes)
        with torch.no_grad():
            acts = {"conv1": net.conv1(x)}
            for prev, lay in zip(layers, layers[1:]):
                acts[lay] = seg[lay](acts[prev])
        for prev, lay in zip(layers, layers[1:]):
            for row, ch in enumerate(nodes[lay]):
                want = torch.zeros(acts[prev].shape[1], dtype=torch.float64)
                for b in range(3):
                    a = acts[prev][b : b + 1]
                    jac = torch.autograd.functional.jacobian(
                        lambda v, lay=lay, ch=ch: seg[lay](v)[0, ch].amax(), a)
                    want += (a * jac).sum((0, 2, 3)).double()
                assert torch.allclose(got[lay][row], want, rtol=1e-5, atol=1e-6), (lay, ch)
            assert got[lay].abs().sum() > 0, lay


def test_batched_backward_passes_equal_the_loop():
    # the GPU's way (several nodes per backward pass), run on the CPU against the CPU's loop,
    # both through a branch's last convolution and from a whole layer's output
    torch.manual_seed(3)
    net = Branchy(seed=9)
    x = torch.rand(4, 1, 8, 8)
    nodes = {"b1": [0, 1, 2, 3, 4, 5, 6], "b2": [1, 2, 5, 6]}
    for use_parts in (True, False):
        loop, _ = influence(net, ["c1", "b1", "b2"], x, nodes, use_parts)
        batched, _ = influence(net, ["c1", "b1", "b2"], x, nodes, use_parts, batch_nodes=3)
        for lay in ("b1", "b2"):
            assert torch.allclose(batched[lay], loop[lay], rtol=1e-6, atol=1e-9)
            assert loop[lay].abs().sum() > 0


def test_importance_matches_a_per_image_oracle():
    torch.manual_seed(2)
    net = SmallConv(seed=5).eval()
    images = torch.rand(10, 1, 8, 8)
    data = TensorDataset(images, [0] * 10, ["a", "b", "c"])
    model = massif.load_model(net, layers=["c1", "c2"], image_size=8, channels=1,
                              class_names=["a", "b", "c"])
    prof = profile_neurons(model, data, list(range(10)), 0, 2, make_attack("fgm"),
                           [0.0, 0.5], batch_size=3)
    # oracle at strength 0, one image at a time
    expected = torch.zeros(4, dtype=torch.float64)
    for i in range(10):
        xi = images[i : i + 1]
        a1 = net.c1(xi).detach().requires_grad_(True)
        z = net.fc(net.c2(a1).flatten(1))[0, 0]
        (g,) = torch.autograd.grad(z, a1)
        expected += (a1 * g).sum((2, 3))[0].clamp_min(0).double()
    assert torch.allclose(prof.importance_benign["c1"][0], expected / 10, atol=1e-5)
    # batches of 3 and one batch of 10 give the same statistics
    whole = profile_neurons(model, data, list(range(10)), 0, 2, make_attack("fgm"),
                            [0.0, 0.5], batch_size=10)
    for lay in ("c1", "c2"):
        assert torch.allclose(prof.importance_target[lay], whole.importance_target[lay],
                              atol=1e-6)
        assert torch.allclose(prof.activation[lay], whole.activation[lay], atol=1e-6)


class SkipBranchy(Branchy):
    """Branchy with the image's mean added to b1's output: b1's input is not all the rest
    of the model reads, so a cut before b1 must carry the image along."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.b1(self.c1(x)) + x.mean((1, 2, 3)).view(-1, 1, 1, 1)
        return self.fc(self.b2(torch.nn.functional.max_pool2d(h, 2)).flatten(1))


@pytest.mark.parametrize("kind", [Branchy, SkipBranchy])
def test_faithfulness_check_equals_masking_the_whole_model_image_by_image(kind):
    # b1 and b2 masked: the check attacks only the images the model gets right (its clean
    # accuracy under each mask counts all), and c1 (before the earliest masked layer) not once
    # per mask: with Branchy not at all (b1's input comes
    # from the pass that recorded the attacked images), with SkipBranchy once per batch (the
    # cut's first half). The counts must be the plain ones.
    torch.manual_seed(11)
    net = kind(seed=15).eval()
    images = torch.rand(40, 1, 8, 8) ** torch.linspace(0.2, 5, 40).view(-1, 1, 1, 1)
    with torch.no_grad():
        benign = int(net(images).argmax(1).mode().values)  # the class it gets right most
    model = massif.load_model(net, layers=["c1", "b1", "b2"], image_size=8, channels=1,
                              class_names=["a", "b", "c"])
    data = TensorDataset(images, [benign] * 40, ["a", "b", "c"])
    target, attack, eps = (benign + 1) % 3, make_attack("fgm"), 1.5
    emphasized = {"b1": [1, 4], "b2": [0, 5]}
    draws = [{"b1": [0, 6], "b2": [2, 3]}, {"b1": [2, 5], "b2": [1, 6]}]
    calls = {"c1": 0, "b1": 0}
    hooks = [getattr(net, name).register_forward_hook(
        lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls]
    runs = {}
    for fx_graph in (None, "auto"):
        calls.update(c1=0, b1=0)
        runs[fx_graph] = profile_edges(model, data, list(range(40)), benign, target, attack,
                                       eps, {"b1": [0], "b2": [0]}, emphasized, draws,
                                       batch_size=16, fx_graph=fx_graph), dict(calls)
    for h in hooks:
        h.remove()
    (plain, plain_calls), (cut, cut_calls) = runs[None], runs["auto"]
    # the oracle: each image alone through the whole model, masked with hooks.mask
    hits = {"emphasized": 0, "random": 0.0}
    right = {"emphasized": 0, "random": 0.0}  # clean images classified benign under the mask
    margins = {"unmasked": 0.0, "emphasized": 0.0, "random": 0.0}
    n_correct = 0
    for i in range(40):
        xi = images[i : i + 1]
        with torch.no_grad():
            for group, masks in (("emphasized", [emphasized]), ("random", draws)):
                for m in masks:
                    with mask(net, m):
                        right[group] += (int(net(xi).argmax(1)) == benign) / len(masks)
            if int(net(xi).argmax(1)) != benign:
                continue
        n_correct += 1
        adv = attacked(model, attack, xi, torch.tensor([target]), [eps], 1)[0].detach()
        with torch.no_grad():
            z = net(adv)[0]
            margins["unmasked"] += float(z[target] - z[benign])
            for group, masks in (("emphasized", [emphasized]), ("random", draws)):
                for m in masks:
                    with mask(net, m):
                        z = net(adv)[0]
                    hits[group] += (int(z.argmax()) == target) / len(masks)
                    margins[group] += float(z[target] - z[benign]) / len(masks)
    assert 0 < n_correct < 40
    for got in (plain, cut):
        assert got.masked_emphasized_asr == pytest.approx(hits["emphasized"] / n_correct)
        assert got.masked_random_asr == pytest.approx(hits["random"] / n_correct)
        assert got.clean_accuracy_emphasized == pytest.approx(right["emphasized"] / 40)
        assert got.clean_accuracy_random == pytest.approx(right["random"] / 40)
        assert got.margin_unmasked == pytest.approx(margins["unmasked"] / n_correct, rel=1e-5)
        assert got.margin_emphasized == pytest.approx(margins["emphasized"] / n_correct,
                                                      rel=1e-5)
        assert got.margin_random == pytest.approx(margins["random"] / n_correct, rel=1e-5)
    assert hits["emphasized"] != hits["random"]  # the masks matter here
    assert right["emphasized"] != right["random"]
    # 3 batches, 3 masks, the clean and the attacked images under each; checking the cut once
    # runs its two halves and the whole model once
    assert cut_calls["b1"] == plain_calls["b1"] + 2  # every mask still runs the masked layer
    per_batch = 0 if kind is Branchy else 1
    assert cut_calls["c1"] == plain_calls["c1"] - 2 * 3 * (3 - per_batch) + 2


def test_homogeneous_path_only_through_positively_homogeneous_channel_wise_steps():
    nn = torch.nn
    cases = {  # label: (steps after the tensor, is the path homogeneous)
        "nothing": ([], True),
        "ReLU, max pool": ([nn.ReLU(), nn.MaxPool2d(3, 2, 1, ceil_mode=True)], True),
        "LeakyReLU, average pool": ([nn.LeakyReLU(0.1), nn.AvgPool2d(2)], True),
        "adaptive pools": ([nn.AdaptiveMaxPool2d(3), nn.AdaptiveAvgPool2d(2)], True),
        "batch norm (a shift)": ([nn.BatchNorm2d(3)], False),
        "sigmoid": ([nn.MaxPool2d(2), nn.Sigmoid()], False),
        "tanh": ([nn.Tanh()], False),
        "a conv": ([nn.Conv2d(3, 3, 1)], False),
    }
    for label, (steps, homogeneous) in cases.items():
        net = torch.nn.Sequential(nn.Conv2d(1, 3, 3), *steps).eval()
        a = net[0](torch.rand(2, 1, 9, 9).requires_grad_(True))
        x = net[1:](a) if steps else a
        assert homogeneous_path(edge_of(x), edge_of(a)) == homogeneous, label
        if homogeneous:  # what it promises: Σ a · ∂s/∂a = Σ x · ∂s/∂x, channel by channel
            s = (x * torch.rand_like(x)).sum()
            (ga, gx) = torch.autograd.grad(s, [a, x])
            assert torch.allclose((a * ga).sum((0, 2, 3)), (x * gx).sum((0, 2, 3)),
                                  rtol=1e-5, atol=1e-6), label


class Chain(torch.nn.Module):
    def __init__(self, conv, *after):
        super().__init__()
        self.conv, self.after = conv, torch.nn.Sequential(*after)

    def forward(self, x):
        return self.after(self.conv(x))


class Skip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


def test_source_convolution_only_where_no_step_mixes_channels():
    def chain(conv, *after):
        return Chain(conv, *after), conv

    one_by_one = torch.nn.Conv2d(4, 4, 1)
    cases = {  # label: (net, the convolution to find or None)
        "conv, batch norm, ReLU": chain(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                        torch.nn.ReLU(True)),
        "conv, ReLU6, max pool": chain(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU6(),
                                       torch.nn.MaxPool2d(2)),
        "conv alone": chain(torch.nn.Conv2d(3, 4, 3)),
        "the last of two convs": (Chain(torch.nn.Conv2d(3, 4, 3), one_by_one), one_by_one),
        "softmax over channels": (Chain(torch.nn.Conv2d(3, 4, 3), torch.nn.Softmax(1)), None),
        "a residual sum": (Skip(), None),
        "grouped conv": (Chain(torch.nn.Conv2d(4, 4, 3, groups=2)), None),
        "transposed conv": (Chain(torch.nn.ConvTranspose2d(3, 4, 3)), None),
    }
    for label, (net, conv) in cases.items():
        with frozen(net):
            x = torch.rand(2, net.conv.in_channels, 8, 8).requires_grad_(True)
            node = source_conv(net(x))
            assert (node is None) == (conv is None), label
            if conv is not None:
                assert torch.equal(node._saved_weight, conv.weight), label
