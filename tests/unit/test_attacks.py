"""Attacks: agree with torchattacks (the reference), stay in [0, 1] and inside the ε-ball."""

import pytest
import torch
import torchattacks

from massif.attacks import Attack, make_attack
from massif.errors import MassifError
from tests.helpers.tiny import SmallConv


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = SmallConv().eval()
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def reference(atk, targeted, x, y):
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    return atk(x, y)


@pytest.mark.parametrize("targeted", [True, False])
def test_fgsm_matches_torchattacks(setup, targeted):
    model, x, y = setup
    ours = make_attack("fgsm", targeted=targeted).perturb(model, x, y, [0.03, 0.1])
    for i, eps in enumerate([0.03, 0.1]):
        ref = reference(torchattacks.FGSM(model, eps=eps), targeted, x, y)
        assert (ours[i] - ref).abs().max() < 1e-6


@pytest.mark.parametrize("targeted", [True, False])
def test_pgd_linf_matches_torchattacks(setup, targeted):
    model, x, y = setup
    eps, steps = 0.05, 7
    ours = Attack("pgd", "linf", targeted=targeted, steps=steps, step_ratio=2.5)
    adv = ours.perturb(model, x, y, [eps])[0]
    ref = reference(torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                                     random_start=False), targeted, x, y)
    assert (adv - ref).abs().max() < 1e-6


@pytest.mark.parametrize("targeted", [True, False])
def test_pgd_l2_matches_torchattacks(setup, targeted):
    model, x, y = setup
    eps, steps = 1.0, 10
    ours = Attack("pgd", "l2", targeted=targeted, steps=steps, step_ratio=2.0)
    adv = ours.perturb(model, x, y, [eps])[0]
    ref = reference(torchattacks.PGDL2(model, eps=eps, alpha=0.2, steps=steps,
                                       random_start=False), targeted, x, y)
    assert (adv - ref).abs().max() < 1e-6


def test_pgd_all_strengths_in_one_batch_equal_separate_runs(setup):
    model, x, y = setup
    atk = Attack("pgd", "l2", steps=5)
    together = atk.perturb(model, x, y, [0.5, 1.0, 2.0])
    for i, eps in enumerate([0.5, 1.0, 2.0]):
        alone = atk.perturb(model, x, y, [eps])[0]
        assert (together[i] - alone).abs().max() < 1e-5


def test_fgm_is_an_l2_step_of_the_given_length_before_clipping(setup):
    model, _, y = setup
    x = torch.full((16, 1, 8, 8), 0.5)  # far from the box edges: no clipping
    adv = make_attack("fgm").perturb(model, x, y, [0.2, 0.4])
    norms = (adv - x).flatten(2).norm(dim=2)
    assert torch.allclose(norms[0], torch.full_like(norms[0], 0.2), atol=1e-5)
    assert torch.allclose(norms[1], torch.full_like(norms[1], 0.4), atol=1e-5)
    # one gradient for every strength: the steps are parallel
    d0, d1 = (adv[0] - x).flatten(1), (adv[1] - x).flatten(1)
    assert torch.allclose(d1, 2 * d0, atol=1e-5)


def test_targeted_fgm_raises_the_target_logit(setup):
    model, x, _ = setup
    t = torch.full((16,), 2)
    adv = make_attack("fgm").perturb(model, x, t, [1.0])[0]
    gain = (model(adv).log_softmax(1) - model(x).log_softmax(1))[:, 2]
    assert (gain > 0).float().mean() > 0.9


@pytest.mark.parametrize("name", ["fgsm", "pgd-linf"])
def test_linf_attacks_stay_in_the_box_and_ball(setup, name):
    model, x, y = setup
    adv = make_attack(name).perturb(model, x, y, [0.02, 0.3])
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv[0] - x).abs().max() <= 0.02 + 1e-6
    assert (adv[1] - x).abs().max() <= 0.3 + 1e-6


def test_pgd_random_start_stays_in_the_ball(setup):
    model, x, y = setup
    adv = Attack("pgd", "l2", random_start=True).perturb(model, x, y, [0.7])[0]
    assert ((adv - x).flatten(1).norm(dim=1) <= 0.7 + 1e-5).all()


def test_bad_attack_names_are_clear():
    with pytest.raises(MassifError, match="unknown attack"):
        make_attack("deepfool")
    with pytest.raises(MassifError, match="l2"):
        Attack("fgm", "linf")
