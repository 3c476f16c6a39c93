"""Influence and importance against independent computations on a random conv net."""

import torch

import massif
from massif.analysis.profile import accumulate_influence, profile_neurons
from massif.attacks import make_attack
from massif.datasets import TensorDataset
from massif.hooks import record
from tests.helpers.tiny import SmallConv


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
