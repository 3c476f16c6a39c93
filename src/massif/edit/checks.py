"""Stronger attacks that know the mask: is a deletion defense real, or does it mask gradients?

A deletion can look like a defense because the attack it is measured with is weak where the
edited model's gradient is: a single step (FGM) through a model whose loss surface the mask made
flat or noisy fails, while an attack that takes many steps, restarts, or a loss that does not
saturate goes through. The pruning-defense literature shows such defenses look far stronger
than they are unless an adaptive attack checks them (Carlini et al. 2019, "On Evaluating
Adversarial Robustness"; Croce & Hein 2020, AutoAttack). So every evaluation of a mask can add
**checks** (``Editor.evaluate(..., checks=[...])``, ``massif edit --check``, the edit route's
``checks``), each run at the analysis's largest strength ``ε_max``, in its norm and direction
(targeted toward ``t``, else away from ``b``), through the unedited model (``before``) and
through the edited one, the mask in place (``after``):

* ``pgd-restarts``: PGD, 50 steps of ``2.5·ε/50`` from a random start, 5 restarts (an image
  counts as attacked when any restart succeeds) (Madry et al. 2018);
* ``apgd-ce``: APGD on the cross-entropy, 100 steps (AutoAttack's APGD-CE);
* ``apgd-t``: APGD on the targeted DLR loss, 100 steps (AutoAttack's APGD-T; at least 4
  classes; untargeted analyses aim at the 9 most likely other classes in turn).

APGD is MASSIF's own (``attacks/apgd.py``), tested equal to torchattacks 3.5.1; it is not
imported from torchattacks, which pins an old ``requests`` (so it cannot be a plain dependency
here), gives unsuccessful images back unchanged, chooses its own APGD-T targets (it cannot aim
at ``t``) and shares the first image's step size across an L2 batch.

Each check reports, before and after: the **ASR** (among the images the model classifies ``b``
when clean, as everywhere in the edit stage) and the **robust accuracy** (the share of all the
class's images still classified ``b`` under the attack). The defense's **gain** under an attack
is its ASR before minus after. A check **warns** when the gain under the analysis's own fresh
attack (``adaptive_asr`` at ``ε_max``) is at least 5 points and the gain under the check is at
most half of it: the defense holds against the attack it was measured with and much less
against one that knows it, a sign of gradient masking.

Checks need a radius: an analysis made with ``cw-l2`` (whose strengths are CW's constant c) is
refused with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..attacks import CHECKS
from ..errors import MassifError, short
from ..hooks import frozen, mask
from .masks import Mask

WARN_GAIN = 0.05  # the smallest gain (ASR points) under the analysis's attack worth checking
WARN_SHARE = 0.5  # warn when the check keeps at most this share of that gain


def parse_checks(checks: Sequence[str] | str | None, what: str = "checks") -> list[str]:
    """Check names from a list or a comma-separated string (``None``: none); a one-line
    ``MassifError`` (starting with ``what``) for an unknown or empty name."""
    if checks is None:
        return []
    if isinstance(checks, str):
        checks = checks.split(",")
    if not isinstance(checks, (list, tuple)):
        raise MassifError(f"{what} are a list of names ({', '.join(CHECKS)}), not "
                          f"{type(checks).__name__}")
    names: list[str] = []
    for raw in checks:
        name = raw.strip().lower() if isinstance(raw, str) else raw
        if not isinstance(name, str) or name not in CHECKS:
            bad = "an empty check name" if name == "" else f"unknown check {short(raw)}"
            raise MassifError(f"{what}: {bad}; choose from {', '.join(CHECKS)}")
        if name not in names:
            names.append(name)
    return names


class RateBeforeAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: float
    after: float


class CheckResult(BaseModel):
    """One stronger attack at ``ε_max``, through the unedited and the edited model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    epsilon: float
    asr: RateBeforeAfter = Field(description="among the images classified benign when clean")
    robust_accuracy: RateBeforeAfter = Field(
        description="share of the class's images still classified benign under the attack")
    gain: float = Field(description="ASR before − after: what the deletion takes from it")
    baseline_gain: float | None = Field(
        description="the same under the analysis's own fresh attack (adaptive ASR at ε_max)")
    masking: bool = Field(description="the gain shrinks to at most half under this attack, "
                          "from at least 5 points: a sign of gradient masking")


def checkable(attack: Any) -> None:
    """Refuse an analysis whose strengths are no radius (``cw-l2``: CW's constant c)."""
    if attack.name == "cw":
        raise MassifError("the checks attack an ε-ball, and a cw-l2 analysis's strengths are "
                          "CW's constant c; check a mask on an analysis made with another "
                          "attack")


def check_attack(session: Any, name: str) -> Any:
    """The attack of check ``name`` for a session's analysis (its norm and direction)."""
    from ..attacks import Attack
    from ..attacks.apgd import APGD

    atk = session.attack
    checkable(atk)
    c = CHECKS[name]
    if c.family == "apgd-t" and len(session.class_names) < 4:  # refused before any work
        raise MassifError(f"the apgd-t check's DLR loss needs at least 4 classes; this model "
                          f"has {len(session.class_names)}: check with pgd-restarts or apgd-ce")
    if c.family == "pgd":
        return Attack("pgd", atk.norm, targeted=atk.targeted, steps=c.steps, step_ratio=2.5,
                      random_start=True)
    return APGD(c.family, atk.norm, targeted=atk.targeted, steps=c.steps, restarts=c.restarts)


def _counts(session: Any, m: Any, attack: Any, restarts: int, eps: float,
            step: Callable[[], None]) -> tuple[int, int, int, int]:
    """(images, correct when clean, attack successes among them, classified benign under the
    attack) through the session's model with mask ``m`` (empty: unedited). ``step()`` runs
    before each batch (progress, and the stop when a job is cancelled)."""
    net, bs = session.net, session.batch_size
    n = len(session.images)
    labels_all = session.labels(n)
    correct = hits = robust = 0
    with frozen(net), mask(net, session.module_paths(m), session.fills(m), session.path_units):
        for s in range(0, n, bs):
            step()
            x = session.images[s : s + bs]
            labels = labels_all[s : s + len(x)]
            with torch.no_grad():
                ok = net(x).argmax(1) == session.benign
            hit = torch.zeros_like(ok)
            kept = ok.clone()  # classified benign under every restart so far
            for r in range(restarts):
                todo = (ok & ~hit).nonzero().squeeze(1) if r else torch.arange(len(x))
                if todo.numel() == 0:
                    break
                torch.manual_seed(r)  # PGD's random start: the same draws every run
                adv = attack.perturb(net, x[todo], labels[todo], [eps])[0]
                with torch.no_grad():
                    pred = net(adv).argmax(1)
                hit[todo] |= session.hit(pred) & ok[todo]
                kept[todo] &= pred == session.benign
            correct += int(ok.sum())
            hits += int(hit.sum())
            robust += int(kept.sum())
    return n, correct, hits, robust


def run_checks(session: Any, m: Any, names: Sequence[str],
               baseline: tuple[float, float] | None,
               progress: Callable[[str, int, int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> list[CheckResult]:
    """Every check in ``names`` on mask ``m`` (module docstring). ``baseline``: the adaptive
    ASR at ``ε_max`` before and after, for the warning (``None``: not measured).
    ``progress(stage, done, total)`` is told after each batch of each check's two sides;
    ``cancelled()``, asked before each batch, stops the checks with ``session.Cancelled``."""
    from .session import Cancelled

    eps = session.strengths[-1]
    batches = -(-len(session.images) // session.batch_size)
    total, done = 2 * len(names) * batches, 0
    out = []

    def step(stage: str) -> Callable[[], None]:
        def tell() -> None:
            nonlocal done
            if cancelled is not None and cancelled():
                raise Cancelled
            if progress is not None:
                progress(stage, done, total)
            done += 1
        return tell

    rng = torch.random.get_rng_state()
    try:
        for name in names:
            attack = check_attack(session, name)
            restarts = CHECKS[name].restarts if CHECKS[name].family == "pgd" else 1
            rates = {}
            for side, mk in (("before", Mask({})), ("after", m)):
                n, correct, hits, robust = _counts(session, mk, attack, restarts, eps,
                                                   step(f"{name} {side}"))
                rates[side] = (hits / correct if correct else 0.0, robust / n if n else 0.0)
            gain = rates["before"][0] - rates["after"][0]
            base = baseline[0] - baseline[1] if baseline is not None else None
            masking = (base is not None and base >= WARN_GAIN and gain <= WARN_SHARE * base)
            out.append(CheckResult(
                name=name, description=CHECKS[name].description, epsilon=eps,
                asr=RateBeforeAfter(before=rates["before"][0], after=rates["after"][0]),
                robust_accuracy=RateBeforeAfter(before=rates["before"][1],
                                                after=rates["after"][1]),
                gain=gain, baseline_gain=base, masking=masking))
    finally:
        torch.random.set_rng_state(rng)
    if progress is not None:
        progress("checks", total, total)
    return out


def warnings_of(results: Sequence[CheckResult], attack: str) -> list[str]:
    """One line per check whose gain shrank (``CheckResult.masking``)."""
    return [f"gradient masking? the deletion lowers the ASR at ε = {r.epsilon:g} by "
            f"{100 * (r.baseline_gain or 0):.1f} points under {attack} but by only "
            f"{100 * r.gain:.1f} under {r.name} ({100 * r.asr.after:.1f}% after): the defense "
            "is weaker than the fresh attack shows" for r in results if r.masking]
