"""Every JSON body the server's routes take and every answer they give, besides the graph
contract (``schemas.Graph``) and the stage results they pass on as they are (``edit.EditResult``,
``edit.DefenseResult``, ``edit.Curves``, ``edit.one_image``, ``comparison.Comparison``). Bodies
refuse fields they do not know (``schemas.Strict``): a typo is a 422 naming it."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from ..attacks import ATTACKS as REGISTRY
from ..edit.masks import MAX_MASK
from ..errors import MassifError
from ..request import MAX_STRENGTH, MIN_STRENGTH
from ..schemas import Edge, ExamplePatch, Node, Strict

PREVIEW_IMAGES = 250  # images (of the class, and of the all-class sample) behind a preview
Mode = Literal["zero", "mean"]
AttackName = Literal[tuple(REGISTRY)]  # type: ignore[valid-type]  # the registry's choices
State = Literal["queued", "running", "done", "error", "cancelled"]  # of a long job


# ------------------------------------------------------------------ analyses

def _no_control_characters(value: int | str) -> int | str:
    """A class name holds no control, invisible or lone surrogate character (a NUL byte, a tab,
    a right-to-left override): loose matching would otherwise read ``"Sneaker\\0"`` as Sneaker."""
    if isinstance(value, str):
        for ch in value:
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
                raise ValueError(f"a class name holds no control or invisible characters (it "
                                 f"has U+{ord(ch):04X})")
    return value


ClassRef = Annotated[StrictInt | StrictStr, AfterValidator(_no_control_characters)]


class PairChoice(Strict):
    """What the control panel asks for: classes by model output index or name, the attack, and
    its maximum strength (default: the attack's, ``massif.attacks.ATTACKS``)."""

    benign: ClassRef = Field(description="class name (at most 200 characters) or index")
    target: ClassRef
    attack: AttackName = "fgm"
    targeted: StrictBool = True
    max_strength: StrictFloat | None = Field(None, ge=MIN_STRENGTH, le=MAX_STRENGTH,
                                             allow_inf_nan=False)


class AnalysisStatus(Strict):
    """Where an analysis stands: ``done`` (its graph is in the workspace), ``queued``,
    ``running`` (with progress in [0, 1]), ``error`` (with the one-line reason), ``cancelled``,
    ``damaged`` (its saved graph cannot be read; ``error`` says why and how to redo it) or
    ``missing``."""

    key: str
    state: Literal["done", "queued", "running", "error", "cancelled", "damaged", "missing"]
    progress: float = 0.0
    stage: str | None = None
    error: str | None = None
    graph: str | None = Field(None, description="URL of the graph JSON once done")
    page: str | None = Field(None, description="URL of the page once done")
    job: int | None = Field(None, description="id of the computation (shared by requests)")


# ------------------------------------------------------------------ the page



class ClassInfo(Strict):
    index: int
    name: str


class AttackChoice(Strict):
    """One attack the page offers, as the registry (``massif.attacks.ATTACKS``) describes it:
    its ``label`` is the choice's value, ``name`` and ``norm`` how a graph records it."""

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


class CheckChoice(Strict):
    """A stronger attack the page offers to check a deletion with (``massif.attacks.CHECKS``)."""

    name: str
    description: str


def check_choices() -> list[CheckChoice]:
    """Every check of the registry, in its order."""
    from ..attacks import CHECKS

    return [CheckChoice(name=c.name, description=c.description) for c in CHECKS.values()]


class SavedAnalysis(Strict):
    key: str
    benign: str
    target: str
    attack: str
    targeted: bool
    max_strength: float
    model: str
    same_model: bool = Field(description="made with the model this server computes with")


class Info(Strict):
    """``/index.json``: what the control panel offers."""

    model: str
    model_fingerprint: str
    dataset: str | None
    can_analyze: bool
    why_not: str | None = None
    classes: list[ClassInfo]
    attacks: list[str]
    default_max_strength: dict[str, float]
    attack_choices: list[AttackChoice] = Field(default_factory=attack_choices)
    checks: list[CheckChoice] = Field(default_factory=check_choices)
    default_request: PairChoice
    analyses: list[SavedAnalysis]


class NodeDetail(Strict):
    """``/graphs/{key}/nodes/{id}.json``: a node, its edges and its pictures."""

    key: str
    node: Node
    incoming: list[Edge]
    outgoing: list[Edge]
    picture: str | None
    examples: str | None
    examples_info: list[ExamplePatch] | None = None


class Pictures(Strict):
    """Which neurons of a graph have pictures: neuron id → URL."""

    pictures: dict[str, str]
    examples: dict[str, str]


# ------------------------------------------------------------------ editing

class EditorInfo(Strict):
    """``POST /graphs/{key}/editor``: the editors are ready."""

    n_images: int
    preview_images: int
    seconds: float


class EmptyBody(Strict):
    """The body of a ``POST`` that needs nothing: ``{}`` (a field, a list or a string is
    refused)."""


class MaskBody(Strict):
    """Neurons to delete and how (the edited model to download takes just this)."""

    mask: list[StrictStr] | StrictStr = Field(
        description="neuron ids layer:channel, as a list or one comma-separated string")
    mode: Mode = "zero"

    def ids(self) -> list[str]:
        """The neuron ids as given (an empty one is refused by ``masks.parse_mask``)."""
        parts = self.mask.split(",") if isinstance(self.mask, str) else self.mask
        if len(parts) > MAX_MASK:
            raise MassifError(f"a mask of {len(parts)} neurons is too long (at most {MAX_MASK})")
        return [s.strip() for s in parts]


class EditBody(MaskBody):
    """What to delete and how to measure it."""

    adaptive: StrictBool = Field(True, description="false: skip the fresh attack "
                                 "(adaptive_asr null), answered several times faster")
    preview: StrictBool = Field(False, description=f"true: only the first {PREVIEW_IMAGES} "
                                "images of the class and of the sample, without the fresh "
                                "attack")
    checks: list[StrictStr] = Field(
        [], description="stronger attacks that know the mask, at ε_max (edit.checks): "
        "pgd-restarts, apgd-ce, apgd-t; slow (the page runs them as a job: ChecksBody)")


class ChecksBody(MaskBody):
    """A deletion measured with stronger attacks that know the mask, as a job."""

    checks: list[StrictStr] = Field(min_length=1, max_length=8, description="pgd-restarts, "
                                    "apgd-ce, apgd-t (edit.checks)")


class DefenseBody(Strict):
    budget: StrictInt = Field(5, ge=1, le=64, description="neurons the greedy search may delete")
    mode: Mode = "zero"
    start: list[StrictStr] = Field(
        default_factory=list, max_length=MAX_MASK, description="neurons already deleted (the "
        "page's deletions): every mask the search measures holds them, and it adds to them")


class GalleryBody(Strict):
    k: StrictInt | None = Field(None, description="strength index (default the largest)")


class DefenseStatus(Strict):
    """A defense search: ``queued``, ``running`` (progress in [0, 1]), ``done`` (with its
    ``result``), ``error`` or ``cancelled``. ``result`` comes before the end: the suggestion
    with ``complete`` false while its baselines are measured (and kept if cancelled then)."""

    id: int
    key: str
    budget: int
    mode: str
    state: State
    progress: float = 0.0
    error: str | None = None
    picks: list[str] = Field(default_factory=list)  # the greedy picks so far, in order
    start: list[str] = Field(default_factory=list)  # the neurons it started from, deleted
    result: Any = None  # edit.DefenseResult: the suggestion first (complete false), then all


class CurvesBody(Strict):
    """Which deletion curves to compute (``massif evaluate``'s options; defaults the same).
    ``{}``: the analysis's saved curves when there are some, whatever made them."""

    ks: list[StrictInt] | None = Field(None, max_length=16, description="sizes k (default 1, "
                                       "2, 4, …, 32, capped at what each ranking holds)")
    rankings: list[StrictStr] | None = Field(None, max_length=8, description="ranking names "
                                             "(default all)")
    draws: StrictInt = Field(10, ge=10, le=100, description="random draws")


class JobStatus(Strict):
    """A long job on an analysis's editor: ``queued``, ``running`` (progress in [0, 1]),
    ``done`` (with ``result``), ``error`` or ``cancelled``."""

    id: int
    key: str
    state: State
    progress: float = 0.0
    error: str | None = None
    result: Any = None


class CurvesStatus(JobStatus):
    """Deletion curves being computed; ``result``: ``edit.Curves``, also saved beside the
    analysis."""


class ChecksStatus(JobStatus):
    """A deletion being checked with stronger attacks; ``result``: ``edit.EditResult`` with
    its ``checks`` and ``warnings``."""
