"""Influence and importance against independent computations on a random conv net."""

import torch

import massif
from massif.analysis.profile import accumulate_influence, profile_neurons
from massif.attacks import make_attack
from massif.datasets import TensorDataset
from massif.hooks import concat_parts, frozen, record
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


def influence(net, layers, x, nodes, use_parts):
    sums = {}
    parts = {} if use_parts else None
    with frozen(net), record(net, {lay: lay for lay in layers}, parts) as acts:
        net(x.clone().requires_grad_(True))
        for prev, lay in zip(layers, layers[1:]):
            sums[lay] = torch.zeros(len(nodes.get(lay, [])), acts[prev].shape[1],
                                    dtype=torch.float64)
        found = {lay: concat_parts(acts[lay], parts[lay]) for lay in layers} if parts else {}
        accumulate_influence(layers, acts, nodes, sums, parts)
    return sums, found


def test_branches_of_a_concatenating_layer_are_found_exactly():
    net = Branchy(seed=4)
    x = torch.rand(3, 1, 8, 8)
    _, found = influence(net, ["c1", "b1", "b2"], x, {}, True)
    assert found["c1"] is None  # a plain conv: nothing concatenated
    assert [off for off, _ in found["b1"]] == [0, 2, 5]  # the three branches, in order
    assert [t.shape[1] for _, t in found["b1"]] == [2, 3, 2]
    assert found["b2"] is None  # one input of its cat is not a child's output


def test_influence_from_the_branch_equals_the_whole_layer_to_the_bit():
    torch.manual_seed(7)
    net = Branchy(seed=6)
    x = torch.rand(5, 1, 8, 8)
    nodes = {"b1": [0, 1, 2, 4, 5, 6], "b2": [0, 3, 6]}
    fast, _ = influence(net, ["c1", "b1", "b2"], x, nodes, True)
    plain, _ = influence(net, ["c1", "b1", "b2"], x, nodes, False)
    for lay in ("b1", "b2"):
        assert torch.equal(fast[lay], plain[lay])
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
    for lay in layers[1:]:
        assert torch.equal(sums[True][lay], sums[False][lay])


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
