"""The JSON answers of the page's routes (``app.py``) that are not the graph contract itself."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..schemas import Edge, ExamplePatch, Node
from .jobs import PairChoice


class ClassInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    name: str


class AttackChoice(BaseModel):
    """One attack the page offers, as the registry (``massif.attacks.ATTACKS``) describes it:
    its ``label`` is the choice's value, ``name`` and ``norm`` how a graph records it."""

    model_config = ConfigDict(extra="forbid")

    label: str
    name: str
    norm: str
    default_max_strength: float
    strength: str = Field(description="what a strength is for this attack")
    description: str


def attack_choices() -> list[AttackChoice]:
    """Every attack of the registry, in its order."""
    from ..attacks import ATTACKS

    return [AttackChoice(label=s.label, name=s.name, norm=s.norm,
                         default_max_strength=s.default_max_strength, strength=s.strength,
                         description=s.description) for s in ATTACKS.values()]


class SavedAnalysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    benign: str
    target: str
    attack: str
    targeted: bool
    max_strength: float
    model: str
    same_model: bool = Field(description="made with the model this server computes with")


class Info(BaseModel):
    """``/index.json``: what the control panel offers."""

    model_config = ConfigDict(extra="forbid")

    model: str
    model_fingerprint: str
    dataset: str | None
    can_analyze: bool
    why_not: str | None = None
    classes: list[ClassInfo]
    attacks: list[str]
    default_max_strength: dict[str, float]
    attack_choices: list[AttackChoice] = Field(default_factory=attack_choices)
    default_request: PairChoice
    analyses: list[SavedAnalysis]


class NodeDetail(BaseModel):
    """``/graphs/{key}/nodes/{id}.json``: a node, its edges and its pictures."""

    model_config = ConfigDict(extra="forbid")

    key: str
    node: Node
    incoming: list[Edge]
    outgoing: list[Edge]
    picture: str | None
    examples: str | None
    examples_info: list[ExamplePatch] | None = None


class Pictures(BaseModel):
    """Which neurons of a graph have pictures: neuron id → URL."""

    model_config = ConfigDict(extra="forbid")

    pictures: dict[str, str]
    examples: dict[str, str]
