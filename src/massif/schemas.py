"""Every JSON (and ``torch.save`` dict) MASSIF reads or writes, as pydantic models.

* ``Graph``: the graph JSON contract (``graph.json``, schema_version 3; version 1 and 2 files
  are read too, see ``Graph.parse_data``). A public interface: the browser, notebooks and other
  tools read it. Change it only by bumping ``SCHEMA_VERSION`` and documenting the change in
  ``docs/graph-json.md``. Fields may be added within a version (they are declared here first);
  none may be removed or change meaning.
* ``ExamplesIndex``: ``examples/<model>-<dataset>/<layer>.json``, the dataset examples' index.
* ``ExportHeader``: the fields of an edited model's file (``Editor.export``) besides its tensors.

Every model forbids fields it does not declare (``extra="forbid"``), so a misspelt or foreign
file is refused with a message naming the field instead of being half-read. The graph's models
also refuse values its contract rules out (``Graph._consistent`` and the field bounds): NaN or
infinity anywhere, a rate outside [0, 1], a negative count, index or channel, strengths that do
not increase from 0, a node listed twice, an edge between nodes that are not in the graph or
not in neighbouring layers, a divergence layer that is not among the layers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .attacks import record_names
from .errors import MassifError
from .files import as_path, writable_file, write_atomic

SCHEMA_VERSION = 3
Group = Literal["suppressed", "shared", "emphasized"]


class Strict(BaseModel):
    """A record that refuses fields it does not know (a typo in a request, a file of another
    version): the base of the graph contract, and of every request body and answer."""

    model_config = ConfigDict(extra="forbid")


class _GraphPart(Strict):
    """A part of the graph contract: every number finite (JSON has no NaN; a NaN written out
    reads back as ``null``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Rate = Annotated[float, Field(ge=0, le=1)]  # a share of images
Count = Annotated[int, Field(ge=0)]


def _without_none(data: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """Leave out the optional fields that are not set (``None``), as files without them read."""
    return {k: v for k, v in data.items() if not (k in optional and v is None)}


class ModelRef(_GraphPart):
    name: str
    fingerprint: str


class DatasetRef(_GraphPart):
    name: str
    fingerprint: str


class BenignRef(_GraphPart):
    index: Count
    name: str
    n_images: Count


class TargetRef(_GraphPart):
    index: Count
    name: str


AttackKind = Literal[record_names()]  # type: ignore[valid-type]  # massif.attacks.ATTACKS


class AttackInfo(_GraphPart):
    name: AttackKind
    norm: Literal["l2", "linf"]
    targeted: bool
    strengths: list[float] = Field(description="ε_0 = 0 < ε_1 < … < ε_K, on [0, 1] images "
                                   "(for cw, the constant c: docs/method.md)")
    steps: int | None = Field(None, ge=1, description="PGD, CW, APGD: iterations per strength")
    step_ratio: float | None = Field(None, gt=0,
                                     description="PGD only: step = step_ratio·ε/steps")
    learning_rate: float | None = Field(None, gt=0, description="CW only: Adam's step size")
    kappa: float | None = Field(None, ge=0, description="CW only: the margin it stops at")
    restarts: int | None = Field(None, ge=1, description="APGD only: runs per image")
    seed: int | None = Field(None, ge=0, description="APGD only: of the random starts")

    @field_validator("strengths")
    @classmethod
    def _increasing(cls, values: list[float]) -> list[float]:
        if not values:
            raise ValueError("is empty")
        if values[0] != 0 or any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError("must start at 0 and increase strictly")
        return values

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        return _without_none(handler(self), ("steps", "step_ratio", "learning_rate", "kappa",
                                             "restarts", "seed"))


class Params(_GraphPart):
    importance: Literal["attribution", "votes"] = "attribution"
    nodes_per_layer: int = Field(8, ge=1)
    edges_per_node: Count = 4
    max_images: int | None = Field(None, ge=1,
                                   description="the class was capped at this many images")
    layer_nodes: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="the layers too narrow for nodes_per_layer, and the nodes each took "
        "instead (a third of its units, analysis.graph.layer_nodes)")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        return _without_none(handler(self), ("max_images", "layer_nodes"))

    def nodes_for(self, layer: str) -> int:
        """The most nodes each of ``layer``'s graphs took."""
        return (self.layer_nodes or {}).get(layer, self.nodes_per_layer)


class Faithfulness(_GraphPart):
    """The check that the emphasized neurons carry the attack (``docs/method.md``): the images
    attacked at ε_max through the model with them masked, and with as many random neurons of
    the same layers masked (means over ``random_draws`` draws).

    An ASR after a deletion reads 0 when the mask takes the benign class with it (the attacked
    images then go to a third class), so each ASR comes with the benign class's clean accuracy
    under the same mask, and the verdict (``faithful``) rests on the target margin
    ``z_t − z_b`` on the attacked images, which deleting the benign class's own neurons raises
    instead of lowering. The fields after ``random_draws`` are ``None`` in a graph read from
    version 2, which did not measure them."""

    masked_emphasized_asr: Rate
    masked_random_asr: Rate
    n_masked: Count = 0
    random_draws: Count = 0
    clean_accuracy_emphasized: Rate | None = Field(
        None, description="the benign class's clean accuracy with the emphasized neurons masked")
    clean_accuracy_random: Rate | None = Field(
        None, description="the same with as many random neurons masked (mean over the draws)")
    margin_unmasked: float | None = Field(
        None, description="mean z_t − z_b on the correct images attacked at ε_max, unmasked")
    margin_emphasized: float | None = Field(
        None, description="the same with the emphasized neurons masked")
    margin_random: float | None = Field(
        None, description="the same with as many random neurons masked (mean over the draws)")
    faithful: bool | None = Field(
        None, description="whether masking the emphasized neurons lowers the margin more than "
        "masking as many random ones; null when not measured or nothing was masked")

    @property
    def margin_drops(self) -> tuple[float, float] | None:
        """How much masking the emphasized and the random neurons lowers the target margin."""
        if self.margin_unmasked is None or self.margin_emphasized is None \
                or self.margin_random is None:
            return None
        return (self.margin_unmasked - self.margin_emphasized,
                self.margin_unmasked - self.margin_random)


def faithful(n_masked: int, n_correct: int, margins: tuple[float, float, float]) -> bool | None:
    """The faithfulness verdict from the target margins unmasked, with the emphasized neurons
    masked and with random ones masked: the emphasized mask must lower the margin, and more
    than the random one does. ``None`` when nothing was masked or no image counts."""
    if not n_masked or not n_correct:
        return None
    unmasked, emphasized, rnd = margins
    return unmasked - emphasized > max(0.0, unmasked - rnd)


class Divergence(_GraphPart):
    """Where attacked images cross from the benign class to the target class, layer by layer
    (``analysis.divergence``; ``docs/method.md``)."""

    measure: Literal["cosine-to-class-means"] = "cosine-to-class-means"
    crossed: list[list[Rate]] = Field(
        description="[strength][layer]: the fraction of the correctly classified benign images "
        "that, attacked at that strength, are closer to the target class's mean than to the "
        "benign class's from that layer on (or from an earlier one) up to the last layer")
    n_images: Count = Field(description="correctly classified benign images the fractions count")
    n_target_images: Count = Field(description="clean target-class images in the target's mean")


def divergence_layer(layers: Sequence[str], crossed: Sequence[float]) -> str | None:
    """The median crossing layer among the images that cross, from one row of
    ``Divergence.crossed``: the first layer where the share reaches half its last value; ``None``
    when no image crosses (``analysis.divergence``)."""
    if not crossed or crossed[-1] <= 0:
        return None
    half = 0.5 * crossed[-1]
    return next(lay for lay, f in zip(layers, crossed) if f >= half)


class Metrics(_GraphPart):
    clean_accuracy: Rate
    attack_success_rate: list[Rate]
    divergence_layer: str | None = Field(
        description="the median crossing layer at ε_max among the attacked images that cross "
        "(see divergence), or null")
    divergence: Divergence | None = Field(
        None, description="null when the target class has no images in the dataset")
    faithfulness: Faithfulness


class Node(_GraphPart):
    id: str
    layer: str
    channel: Count
    group: Group
    vulnerability: Rate | None
    flip_strength: Annotated[float, Field(ge=0)] | None
    importance_benign: list[float]
    importance_target: list[float]
    activation: list[float]


class Edge(_GraphPart):
    source: str
    target: str
    influence_benign: float
    influence_attacked: float


class Graph(_GraphPart):
    """A merged attribution graph; ``Graph.load(path)`` / ``graph.save(path)`` round-trip it."""

    schema_version: int = SCHEMA_VERSION
    model: ModelRef
    dataset: DatasetRef
    benign: BenignRef
    target: TargetRef
    attack: AttackInfo
    params: Params
    layers: list[str] = Field(min_length=1)
    metrics: Metrics
    nodes: list[Node]
    edges: list[Edge]
    warnings: list[str] = Field(default_factory=list,
                                description="why the graph may mean little, one line each")

    @model_validator(mode="after")
    def _consistent(self) -> Graph:
        """What must agree: one value per strength, one crossed share per layer, node ids
        ``layer:channel`` of listed layers, each once, edges from a node of the previous layer
        to one of the next, a divergence layer among the layers (a hand-made file is told what
        is off, naming the field)."""
        k = len(self.attack.strengths)
        if k < 1:
            raise ValueError("attack.strengths is empty")
        position = {lay: i for i, lay in enumerate(self.layers)}
        if len(position) != len(self.layers):
            twice = next(lay for lay in self.layers if self.layers.count(lay) > 1)
            raise ValueError(f"layers: {twice[:60]!r} is listed twice")
        for lay, n in (self.params.layer_nodes or {}).items():
            if lay not in position or n >= self.params.nodes_per_layer:
                raise ValueError(f"params.layer_nodes: {lay[:60]!r} must be one of layers, "
                                 "with fewer nodes than nodes_per_layer")
        if self.metrics.divergence_layer is not None \
                and self.metrics.divergence_layer not in position:
            raise ValueError(f"metrics.divergence_layer: {self.metrics.divergence_layer[:60]!r}"
                             " is not one of layers")
        if len(self.metrics.attack_success_rate) != k:
            raise ValueError(f"metrics.attack_success_rate has "
                             f"{len(self.metrics.attack_success_rate)} values for {k} strengths")
        div = self.metrics.divergence
        if div is not None and (len(div.crossed) != k
                                or any(len(row) != len(self.layers) for row in div.crossed)):
            raise ValueError("metrics.divergence.crossed needs one row per strength and one "
                             "value per layer")
        layer_of: dict[str, str] = {}
        for i, n in enumerate(self.nodes):
            if n.layer not in position or n.id != f"{n.layer}:{n.channel}":
                raise ValueError(f"nodes.{i}: {n.id[:60]!r} is not layer:channel of a listed "
                                 "layer")
            if not len(n.importance_benign) == len(n.importance_target) == len(n.activation) == k:
                raise ValueError(f"nodes.{i}: {n.id[:60]!r} needs one value per strength ({k}) in "
                                 "importance_benign, importance_target and activation")
            if n.id in layer_of:
                raise ValueError(f"nodes.{i}.id: {n.id[:60]!r} is listed twice")
            layer_of[n.id] = n.layer
        for i, e in enumerate(self.edges):
            for end in ("source", "target"):
                if getattr(e, end) not in layer_of:
                    raise ValueError(f"edges.{i}.{end}: {getattr(e, end)[:60]!r} is not a node "
                                     "of the graph")
            if position[layer_of[e.source]] + 1 != position[layer_of[e.target]]:
                raise ValueError(f"edges.{i}: {e.source[:60]!r} -> {e.target[:60]!r} does not "
                                 "go from a layer to the next")
        return self

    def node(self, neuron_id: str) -> Node:
        for n in self.nodes:
            if n.id == neuron_id:
                return n
        raise KeyError(neuron_id)

    def nodes_in(self, layer: str, group: Group | None = None) -> list[Node]:
        return [n for n in self.nodes if n.layer == layer and (group is None or n.group == group)]

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file in the same folder, then a rename."""
        target = writable_file(as_path(path, "the graph's file"), "the graph")
        return write_atomic(target, self.to_json())

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> Graph:
        """Read and validate a ``graph.json``; anything else is a one-line ``MassifError``
        that calls the file ``name`` (default: ``path`` as given)."""
        where = name or str(path)
        try:
            data = json.loads(as_path(path, "the graph's file").read_text())
        except (OSError, ValueError, RecursionError) as e:  # (JSON nested thousands deep)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)[:200]
            raise MassifError(f"cannot read graph {where}: {reason}") from None
        return cls.parse_data(data, where)

    @classmethod
    def parse_data(cls, data: object, where: str = "graph") -> Graph:
        """Validate decoded JSON as a graph (schema version first, then every field)."""
        if not isinstance(data, dict):
            raise MassifError(f"{where} is not a graph: a JSON object was expected, not "
                              f"{type(data).__name__}")
        if data.get("schema_version") == 1:
            data = _from_version_1(data)
        if data.get("schema_version") == 2:
            data = _from_version_2(data)
        if data.get("schema_version") != SCHEMA_VERSION:
            version = str(data.get("schema_version"))[:20]
            raise MassifError(f"{where} has schema_version {version}; this MASSIF reads "
                              f"{SCHEMA_VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise MassifError(f"{where} is not a valid graph: {first_error(e)}") from None

    def summary(self, most_vulnerable: int = 5) -> str:
        """A short human summary, as printed at the end of ``massif analyze``."""
        return summary(self, most_vulnerable)



def _from_version_1(data: dict) -> dict:
    """A version 1 graph as version 2: the same but for the divergence layer, whose old rule
    (the first layer whose benign and attacked node sets differ by half) is dropped."""
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):  # damaged: validation says where
        return {**data, "schema_version": 2}
    warning = ("this graph was written by an older MASSIF (graph format 1), without the "
               "divergence measure; analyse the pair again to see where images cross")
    warnings = data.get("warnings", [])
    return {**data, "schema_version": 2,
            "metrics": {**metrics, "divergence_layer": None, "divergence": None},
            "warnings": [*warnings, warning] if isinstance(warnings, list) else warnings}


def _from_version_2(data: dict) -> dict:
    """A version 2 graph as version 3: the same, its faithfulness check without the clean
    accuracies and margins under the masks (``None``: not measured), and a warning that its
    check could not fail the way it read."""
    warning = ("this graph was written by an older MASSIF (graph format 2), whose faithfulness "
               "check compared ASRs only: an ASR after masking reads 0 when the mask takes the "
               "benign class with it; analyse the pair again for the clean accuracy and the "
               "target margin under the masks")
    warnings = data.get("warnings", [])
    return {**data, "schema_version": SCHEMA_VERSION,
            "warnings": [*warnings, warning] if isinstance(warnings, list) else warnings}


def first_error(e: ValidationError) -> str:
    """The first of pydantic's errors as ``field.path: message`` (input not echoed)."""
    err = e.errors()[0]
    err = {**err, "msg": str(err.get("msg", "")).removeprefix("Value error, ")}
    where = ".".join(str(p) for p in err.get("loc", ()))
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err.get('msg')}{more}" if where else f"{err.get('msg')}{more}"


class ReceptiveFieldInfo(Strict):
    size: int
    stride: int
    offset: int


class ExampleChannel(Strict):
    images: list[int] = Field(description="dataset indices, best first")
    values: list[float] = Field(description="max over positions of the channel's activation")
    positions: list[list[int]] = Field(description="arg-max (row, column) per image")
    boxes: list[list[int]] = Field(description="crop (top, left, bottom, right) per image")
    classes: list[str] | None = Field(
        default=None, description="class name of each image (absent in indexes written before "
        "it was added)")


class ExamplePatch(Strict):
    """One patch of a neuron's dataset-examples strip: its dataset image, that image's class
    (``None`` when unknown) and the channel's activation on it."""

    image: int
    class_name: str | None
    value: float


class ExamplesIndex(Strict):
    """``examples/<model fp>-<dataset fp>/<layer>.json``: the top images of every channel."""

    layer: str
    k: int
    sample: int | None = None  # the images of a stratified sample scanned (None: all)
    model: str
    dataset: str
    image_size: int
    receptive_field: ReceptiveFieldInfo
    channels: list[ExampleChannel]


class ExportHeader(Strict):
    """An edited model's file (``Editor.export``) without its tensors (``state_dict``, and the
    fill ``values`` of mode ``mean``), which are checked to be tensors on their own."""

    format: Literal["massif-edited-model"]
    version: Literal[1]
    mask: list[str]
    mode: Literal["zero", "mean"]
    layers: dict[str, str]
    model: str
    fingerprint: str
    layouts: dict[str, str] = {}  # layers whose units are not on axis 1 (``units.parse_layer``)


def summary(graph: Graph, most_vulnerable: int = 5) -> str:
    """See ``Graph.summary``."""
    g = graph
    kind = "targeted" if g.attack.targeted else "untargeted"
    div = g.metrics.divergence
    lines = [f"warning: {w}" for w in g.warnings] + [
        f"MASSIF: {g.benign.name} -> {g.target.name}, {kind} {g.attack.name.upper()} "
        f"({g.attack.norm}) up to {g.attack.strengths[-1]:g} on [0, 1] images",
        f"model {g.model.name}, {g.benign.n_images} images, "
        f"clean accuracy {g.metrics.clean_accuracy:.1%}",
        "",
        "attack success rate by strength:",
        "  " + "  ".join(f"{s:g}: {a:.0%}" for s, a in
                         zip(g.attack.strengths, g.metrics.attack_success_rate)),
        "",
        f"{'layer':<12}{'suppressed':>11}{'shared':>8}{'emphasized':>11}"
        + (f"{'crossed':>9}" if div else ""),
    ]
    for i, layer in enumerate(g.layers):
        counts = [len(g.nodes_in(layer, grp)) for grp in ("suppressed", "shared", "emphasized")]
        mark = "  <- divergence" if layer == g.metrics.divergence_layer else ""
        crossed = f"{div.crossed[-1][i]:>9.0%}" if div else ""
        lines.append(f"{layer:<12}{counts[0]:>11}{counts[1]:>8}{counts[2]:>11}{crossed}{mark}")
    if div:
        lines.append(f"(crossed: share of the correct images that, attacked at "
                     f"{g.attack.strengths[-1]:g}, are closer to {g.target.name}'s activations "
                     "from this layer on)")
    if g.params.layer_nodes:
        narrow = ", ".join(f"{lay} {n}" for lay, n in g.params.layer_nodes.items())
        lines.append(f"(narrow layers: the graphs took a third of their units, not "
                     f"{g.params.nodes_per_layer}: {narrow})")
    moved = [n for n in g.nodes if n.vulnerability is not None]
    moved.sort(key=lambda n: (-(n.vulnerability or 0), n.flip_strength or 0, n.id))
    lines += ["", "most vulnerable neurons (flip at the weakest strength):"]
    for n in moved[:most_vulnerable]:
        lines.append(f"  {n.id:<14} {n.group:<11} vulnerability {n.vulnerability:.2f}, "
                     f"flips at {n.flip_strength:g}")
    if not moved:
        lines.append("  none: the attack shares every graph neuron")
    eps_max = g.attack.strengths[-1]
    where = (f" (at {eps_max:g}, {div.crossed[-1][-1]:.0%} of the images end closer to "
             f"{g.target.name}; half of those have crossed by this layer)"
             if div and g.metrics.divergence_layer else "")
    lines += ["", f"divergence layer: {g.metrics.divergence_layer or 'none'}{where}",
              *faithfulness_lines(g)]
    return "\n".join(lines)


def faithfulness_lines(g: Graph) -> list[str]:
    """The summary's faithfulness check: ASR, the benign class's clean accuracy and the target
    margin, unmasked and with each mask, and the verdict (``Faithfulness``)."""
    f = g.metrics.faithfulness
    eps_max = g.attack.strengths[-1]
    asr = g.metrics.attack_success_rate[-1]
    drops = f.margin_drops
    if f.clean_accuracy_emphasized is None or f.clean_accuracy_random is None or drops is None:
        return [f"faithfulness (graph format 2, ASR only): ASR at {eps_max:g} with the "
                f"{f.n_masked} emphasized neurons masked {f.masked_emphasized_asr:.0%}, with "
                f"as many random ones {f.masked_random_asr:.0%} (unmasked {asr:.0%})"]
    lines = [
        f"faithfulness at ε = {eps_max:g}: the {f.n_masked} emphasized neurons masked, and as "
        f"many random ones of the same layers (mean of {f.random_draws} draws); clean accuracy "
        f"on {g.benign.name}, target margin z_{g.target.name} − z_{g.benign.name} on the "
        "attacked images",
        f"  {'':<18}{'ASR':>5}  {'clean accuracy':>14}  {'target margin':>13}",
    ]
    for name, a, acc, m in (
            ("unmasked", asr, g.metrics.clean_accuracy, f.margin_unmasked),
            ("emphasized masked", f.masked_emphasized_asr, f.clean_accuracy_emphasized,
             f.margin_emphasized),
            ("random masked", f.masked_random_asr, f.clean_accuracy_random, f.margin_random)):
        lines.append(f"  {name:<18}{a:>5.0%}  {acc:>14.1%}  {m:>13.2f}")
    if f.faithful is None:
        verdict = "not checked (no emphasized neurons, or no image classified correctly)"
    else:
        verdict = (f"{'faithful' if f.faithful else 'NOT faithful'}: masking the emphasized "
                   f"neurons lowers the target margin on the attacked images by {drops[0]:.2f},"
                   f" as many random ones by {drops[1]:.2f}")
    lines.append(f"  {verdict}")
    if f.clean_accuracy_emphasized < 0.5 * g.metrics.clean_accuracy:
        lines.append(f"  (the emphasized mask leaves {f.clean_accuracy_emphasized:.0%} of the "
                     f"{g.benign.name} images classified right: its ASR says the class is gone, "
                     "not that the attack is stopped; the margin does not vanish with the class)")
    return lines
