"""Attacks: agree with torchattacks (the reference), stay in [0, 1] and inside the ε-ball."""

import pytest
import torch
import torchattacks
from torch import nn

from massif.attacks import Attack, make_attack
from massif.attacks.apgd import APGD
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


# ------------------------------------------------------------------ CW-L2, APGD-CE, APGD-T


class FiveWay(nn.Module):
    """A seeded conv net on 1×8×8 images with 5 classes (APGD-T's DLR loss needs 4 or more);
    ``shift`` is added to every logit (softmax and CW's margins do not change with it, but
    torchattacks' CW reads a negative logit as 0, so its test keeps them positive)."""

    def __init__(self, shift: float = 0.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.c1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c1(x).flatten(1)) + self.shift


@pytest.fixture
def five():
    torch.manual_seed(0)
    model = FiveWay().eval()
    x = 0.05 + 0.9 * torch.rand(12, 1, 8, 8)  # inside (0, 1): torchattacks' CW starts finite
    y = model(x).argmax(1)  # the clean prediction as the true class: every image counts
    return model, x, y


@pytest.mark.parametrize("targeted", [True, False])
def test_cw_matches_torchattacks_image_by_image(five, targeted):
    _, x, y = five
    model = FiveWay(shift=50.0).eval()
    labels = (y + 1) % 5 if targeted else y
    ours = make_attack("cw-l2", targeted=targeted, steps=30, learning_rate=0.05)
    together = ours.perturb(model, x, labels, [0.5, 5.0])
    for k, c in enumerate([0.5, 5.0]):
        for i in range(len(x)):  # torchattacks stops the whole batch early: one image each
            ref = reference(torchattacks.CW(model, c=c, kappa=0, steps=30, lr=0.05), targeted,
                            x[i : i + 1], labels[i : i + 1])
            assert (together[k, i] - ref[0]).abs().max() < 1e-5, (k, i)
    assert (together[1] != x).any()  # the attack did something


def test_cw_at_c_zero_leaves_the_image_and_black_pixels_are_not_stuck(five):
    _, x, y = five
    model = FiveWay(shift=50.0).eval()
    x = x.clone()
    x[:, :, :4] = 0.0  # black rows: torchattacks' CW starts them at atanh(-1) = -inf
    t = (y + 1) % 5
    adv = make_attack("cw-l2", steps=40, learning_rate=0.1).perturb(model, x, t, [0.0, 20.0])
    assert torch.equal(adv[0], x)
    ref = reference(torchattacks.CW(model, c=20.0, steps=40, lr=0.1), True, x, t)
    assert (ref[:, :, :4] == 0).all()  # stuck: its gradient there is 0
    assert (adv[1][:, :, :4] > 1e-6).any()  # ours start finite, so they can move


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.5)])
def test_apgd_ce_matches_torchattacks(five, norm, eps):
    model, x, y = five
    ref = torchattacks.APGD(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=12,
                            n_restarts=2, seed=3, loss="ce")
    robust, ref_adv = ref.perturb(x, y)
    ours = APGD("apgd-ce", norm, targeted=False, steps=12, restarts=2, seed=3)
    adv, done = ours.attack_with_success(model, x, y, torch.full((len(x),), eps))
    assert torch.equal(done, ~robust) and done.any() and not done.all()
    assert (adv[done] - ref_adv[done]).abs().max() < 1e-6


def test_apgd_t_untargeted_matches_torchattacks(five):
    """AutoAttack's setting: the 4 other classes in turn, by clean likelihood."""
    model, x, y = five
    ref = torchattacks.APGDT(model, norm="Linf", eps=0.03, steps=10, n_restarts=1, seed=0,
                             n_classes=5)
    robust, ref_adv = ref.perturb(x, y)
    ours = make_attack("apgd-t-linf", targeted=False, steps=10, seed=0)
    adv, done = ours.attack_with_success(model, x, y, torch.full((len(x),), 0.03))
    assert torch.equal(done, ~robust) and done.any() and not done.all()
    assert (adv[done] - ref_adv[done]).abs().max() < 1e-6


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.6)])
def test_apgd_t_toward_a_target_follows_torchattacks_run(five, norm, eps):
    """MASSIF's targeted APGD-T aims at the given target: torchattacks' run toward the second
    most likely class (its ``target_class`` 2) climbs the same DLR loss through the same
    iterates when that class is the target (one image at a time: its L2 run shares the first
    image's step size across a batch)."""
    model, x, _ = five
    ours = make_attack(f"apgd-t-{norm}", steps=15, seed=0)
    ref = torchattacks.APGDT(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=15)
    ref.target_class = 2
    for i in range(6):
        xi = x[i : i + 1]
        order = model(xi).sort(dim=1)[1][0]
        y, t = order[-1:], order[-2:-1]
        torch.manual_seed(0)
        ref_best, _, ref_loss, _ = ref.attack_single_run(xi, y)
        best, _, loss, _ = ours._run(model, xi, y, t, torch.tensor([eps]),
                                     torch.Generator().manual_seed(0))
        assert (best - ref_best).abs().max() < 1e-6 and torch.allclose(loss, ref_loss)


@pytest.mark.parametrize("name", ["apgd-t-linf", "apgd-t-l2", "cw-l2"])
def test_new_attacks_run_many_strengths_at_once_in_the_box_and_ball(five, name):
    model, x, y = five
    atk = make_attack(name, steps=8)
    strengths = [0.02, 0.1] if name.endswith("linf") else [0.3, 1.5]
    adv = atk.perturb(model, x, (y + 1) % 5, strengths)
    assert adv.shape == (2, *x.shape) and adv.min() >= 0 and adv.max() <= 1
    for k, eps in enumerate(strengths):
        if name.startswith("apgd"):
            size = ((adv[k] - x).flatten(1).abs().amax(1) if name.endswith("linf")
                    else (adv[k] - x).flatten(1).norm(dim=1))
            assert (size <= eps + 1e-5).all()
    if name == "cw-l2":  # one image's result does not depend on the batch it is in
        alone = atk.perturb(model, x[:1], (y[:1] + 1) % 5, strengths)
        assert (adv[:, :1] - alone).abs().max() < 1e-6


def test_targeted_apgd_t_reaches_the_target_more_than_pgd_at_equal_steps(five):
    model, x, y = five
    t = (y + 2) % 5
    apgd = make_attack("apgd-t-linf", steps=20).perturb(model, x, t, [0.05])[0]
    pgd = make_attack("pgd-linf", steps=20).perturb(model, x, t, [0.05])[0]
    assert (model(apgd).argmax(1) == t).sum() >= (model(pgd).argmax(1) == t).sum()
    assert (model(apgd).argmax(1) == t).any()


def test_apgd_t_needs_four_classes(setup):
    model, x, y = setup
    with pytest.raises(MassifError, match="at least 4 classes"):
        make_attack("apgd-t-linf").perturb(model, x, y, [0.1])
