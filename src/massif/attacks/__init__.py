"""Adversarial attacks on [0, 1] images, and ``ATTACKS``: the one registry of them.

Every attack has one shape: ``attack.perturb(model, x, labels, strengths)`` takes images
``x: [B, C, H, W]`` in [0, 1], ``labels: [B]`` (the target class when ``attack.targeted``, the
true class otherwise) and strengths ``ε_1 … ε_K``, and returns adversarial images
``[K, B, C, H, W]`` in [0, 1]; the model's normalisation lives inside the model. One module per
family: ``gradient.py`` (FGM, FGSM, PGD), ``cw.py`` (CW-L2), ``apgd.py`` (APGD-CE, APGD-T).

``ATTACKS`` maps each ``--attack`` name (its *label*, ``pgd-l2``) to an ``AttackSpec``: the
attack's ``name`` and ``norm`` as ``graph.json`` keeps them, its default largest strength, what
a strength means, and a one-line description. Everything that lists or names attacks reads it:
the CLI's ``--attack`` help, the graph contract's ``attack.name`` (``schemas.AttackInfo``), the
server's choices (``/index.json``, ``POST /analyses``), the page's select (from ``/index.json``),
the report and the Editor's labels (``attack_label``). Adding an attack is one entry here.
``CHECKS`` likewise lists the stronger attacks that check a deletion defense (``massif edit
--check``, ``massif.edit.checks``).

This module imports no torch (``massif --help`` stays instant): the attack classes load on
first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..errors import MassifError, short

if TYPE_CHECKING:
    from .gradient import Attack, attack_direction

__all__ = ["ATTACKS", "CHECKS", "Attack", "AttackSpec", "CheckSpec", "attack_direction",
           "attack_from_record", "attack_label", "attack_names", "default_max_strength",
           "make_attack", "spec_of"]


@dataclass(frozen=True)
class AttackSpec:
    """One attack MASSIF offers.

    ``label``: the name users give (``--attack``, ``AnalysisRequest(attack=)``, the page);
    ``name``/``norm``: how ``graph.json`` records it (``attack.name``, ``attack.norm``);
    ``default_max_strength``: the largest strength when none is given, on [0, 1] images;
    ``strength``: what a strength is for this attack; ``targeted``: whether it runs targeted
    (toward ``--target``) by default; ``untargeted``: whether ``--untargeted`` is offered;
    ``factory``: ``module:callable`` (in this package) building it from
    ``(targeted=..., **options)``; ``options``: the recipe fields ``graph.json`` keeps.
    """

    label: str
    name: str
    norm: str
    default_max_strength: float
    strength: str
    description: str
    factory: str
    fixed: tuple[tuple[str, Any], ...] = ()  # arguments the label itself sets
    options: tuple[str, ...] = ()
    targeted: bool = True
    untargeted: bool = True

    def make(self, targeted: bool = True, **options: Any) -> Any:
        module, _, attr = self.factory.partition(":")
        build = getattr(import_module(f".{module}", __name__), attr)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(self.options) or "none"
            raise MassifError(f"unknown attack option {short(unknown[0])} for {self.label} "
                              f"(its options: {allowed})")
        if not targeted and not self.untargeted:
            raise MassifError(f"{self.label} runs targeted only")
        return build(**dict(self.fixed), targeted=targeted, **options)


_PGD_OPTIONS = ("steps", "step_ratio", "random_start")
_APGD_OPTIONS = ("steps", "restarts", "seed")

ATTACKS: dict[str, AttackSpec] = {spec.label: spec for spec in (
    AttackSpec("fgm", "fgm", "l2", 3.5, "ε: the L2 length of the step",
               "one gradient step of L2 length ε (Miyato et al. 2017; the default)",
               "gradient:Attack", (("name", "fgm"), ("norm", "l2"))),
    AttackSpec("fgsm", "fgsm", "linf", 0.1, "ε: the L∞ size of the step",
               "one signed gradient step of size ε (Goodfellow et al. 2015)",
               "gradient:Attack", (("name", "fgsm"), ("norm", "linf"))),
    AttackSpec("pgd-l2", "pgd", "l2", 3.5, "ε: the L2 radius of the ball",
               "10 L2 gradient steps, each projected onto the ε-ball (Madry et al. 2018)",
               "gradient:Attack", (("name", "pgd"), ("norm", "l2")), _PGD_OPTIONS),
    AttackSpec("pgd-linf", "pgd", "linf", 0.1, "ε: the L∞ radius of the ball",
               "10 signed gradient steps, each projected onto the ε-ball (Madry et al. 2018)",
               "gradient:Attack", (("name", "pgd"), ("norm", "linf")), _PGD_OPTIONS),
    AttackSpec("cw-l2", "cw", "l2", 1.0,
               "c: CW's constant weighing success against the L2 size (no radius)",
               "Carlini & Wagner's L2 attack, 50 Adam steps (Carlini & Wagner 2017)",
               "cw:CW", (), ("steps", "learning_rate", "kappa")),
    AttackSpec("apgd-t-l2", "apgd-t", "l2", 3.5, "ε: the L2 radius of the ball",
               "Auto-PGD on the targeted DLR loss, 10 steps, AutoAttack's APGD-T "
               "(Croce & Hein 2020)",
               "apgd:APGD", (("name", "apgd-t"), ("norm", "l2")), _APGD_OPTIONS),
    AttackSpec("apgd-t-linf", "apgd-t", "linf", 0.1, "ε: the L∞ radius of the ball",
               "Auto-PGD on the targeted DLR loss, 10 steps, AutoAttack's APGD-T "
               "(Croce & Hein 2020)",
               "apgd:APGD", (("name", "apgd-t"), ("norm", "linf")), _APGD_OPTIONS),
)}
# Other spellings ``make_attack`` takes (never listed as choices).
ALIASES = {"pgd": "pgd-linf", "apgd-t": "apgd-t-linf", "cw": "cw-l2"}


@dataclass(frozen=True)
class CheckSpec:
    """A stronger attack that checks a deletion defense (``massif.edit.checks``): run at the
    analysis's largest strength, in its norm and direction, ``steps`` iterations and
    ``restarts`` runs; ``family``: ``pgd``, ``apgd-ce`` or ``apgd-t``."""

    name: str
    description: str
    family: str
    steps: int
    restarts: int


CHECKS: dict[str, CheckSpec] = {c.name: c for c in (
    CheckSpec("pgd-restarts", "PGD, 50 steps from a random start, 5 restarts", "pgd", 50, 5),
    CheckSpec("apgd-ce", "APGD on the cross-entropy, 100 steps (AutoAttack's APGD-CE)",
              "apgd-ce", 100, 1),
    CheckSpec("apgd-t", "APGD on the targeted DLR loss, 100 steps (AutoAttack's APGD-T)",
              "apgd-t", 100, 1),
)}


def attack_names() -> list[str]:
    """Every ``--attack`` name, in the registry's order."""
    return list(ATTACKS)


def record_names() -> tuple[str, ...]:
    """Every ``attack.name`` a ``graph.json`` may hold."""
    return tuple(dict.fromkeys(spec.name for spec in ATTACKS.values()))


def find(label: str) -> AttackSpec:
    """The spec of an ``--attack`` name (case and ``_``/``-`` do not matter; aliases too)."""
    if not isinstance(label, str):
        raise MassifError(f"the attack is named by a string ({', '.join(ATTACKS)}), not "
                          f"{type(label).__name__}")
    key = label.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in ATTACKS:
        raise MassifError(f"unknown attack {short(label)}; choose from {', '.join(ATTACKS)}")
    return ATTACKS[key]


def spec_of(attack: Any) -> AttackSpec:
    """The spec of an attack object or a ``graph.json`` record (by ``name`` and ``norm``)."""
    for spec in ATTACKS.values():
        if spec.name == attack.name and spec.norm == attack.norm:
            return spec
    raise MassifError(f"no attack {short(attack.name)} ({short(attack.norm)}) is known; "
                      f"MASSIF offers {', '.join(ATTACKS)}")


def attack_label(attack: Any) -> str:
    """The ``--attack`` name of an attack or a graph's attack record (``pgd-l2``)."""
    return spec_of(attack).label


def default_max_strength(attack: Any) -> float:
    """The largest strength when none is given (3.5 for FGM and L2 PGD, 0.1 for L∞)."""
    return spec_of(attack).default_max_strength


def make_attack(name: str = "fgm", targeted: bool = True, **options: Any) -> Any:
    """The attack named ``name`` (an ``--attack`` name of ``ATTACKS``; ``pgd`` means
    ``pgd-linf``); ``options``: its recipe (``AttackSpec.options``: PGD's ``steps``,
    ``step_ratio``, ``random_start``)."""
    return find(name).make(targeted=targeted, **options)


def attack_from_record(record: Any) -> Any:
    """The attack a ``graph.json``'s ``attack`` record (``schemas.AttackInfo``) describes."""
    spec = spec_of(record)
    options = {k: getattr(record, k) for k in spec.options
               if getattr(record, k, None) is not None}
    return spec.make(targeted=record.targeted, **options)


def help_text() -> str:
    """The ``--attack`` help: every name with its norm (the first is the default)."""
    norms = {"l2": "L2", "linf": "Linf"}
    return ", ".join(f"{spec.label} ({norms[spec.norm]})" for spec in ATTACKS.values()) + "."


def strengths_text() -> str:
    """The default largest strength of each attack, for ``--max-strength``'s help."""
    return ", ".join(f"{spec.label} {spec.default_max_strength:g}" for spec in ATTACKS.values())


def __getattr__(name: str) -> Any:
    # The attack classes and helpers load torch, so they load on first use (PEP 562).
    if name in ("Attack", "attack_direction", "KINDS"):
        value = getattr(import_module(".gradient", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massif.attacks' has no attribute {name!r}")
