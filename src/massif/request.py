"""``AnalysisRequest``: everything that names one analysis, checked and resolved once.

An analysis is fixed by a model, a dataset, a benign and a target class, an attack, its strengths
and the graph's options. ``AnalysisRequest`` holds them as the user gave them (specs such as
``"bundled"`` or ``"fashion-mnist"``, or objects already loaded); ``resolve()`` turns them, once,
into a ``Resolved``: the loaded ``Model`` and ``Dataset``, the class indices in the model's
outputs, the ``Attack``, the strengths, the class's image indices and the workspace ``key``.

The CLI, ``massif.analyze``, the server's jobs and the ``Editor`` all start from this object, so
a class name, a strength or a cap on the images means the same everywhere, and the same request
always lands on the same workspace folder.

Run options (``batch_size``, ``workers``, ``device``) travel with the request but are not part
of its key: they change how fast an answer comes, not the answer. ``batch_size=None`` (the
default) picks the largest batch that fits in memory (``memory.auto_batch_size``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .classes import class_images, class_space, resolve_class_of
from .devices import resolve_device
from .errors import MassifError, short
from .files import slug
from .schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    import torch

    from .attacks import Attack
    from .datasets import Dataset
    from .models import Model
    from .schemas import AttackInfo, Params

IMPORTANCES = ("attribution", "votes")
MIN_STRENGTH = 1e-6  # below this a perturbation of [0, 1] float32 images is lost in rounding
MAX_STRENGTH = 1e4


@dataclass(frozen=True)
class AnalysisRequest:
    """One analysis as asked for; ``resolve()`` checks and loads it (see the module docstring).

    ``model``: ``"bundled"``, ``"torchvision:NAME"``, ``"timm:NAME"``, ``"hf:PATH"``,
    ``"file.py:factory"``, a loaded ``Model``
    or an ``nn.Module`` taking [0, 1] images (``weights``, ``layers``, ``image_size`` apply to a
    spec). ``data``: ``"fashion-mnist[:train|:test]"``, an ImageFolder path, a ``Dataset``, or
    ``None`` for the model's own. ``benign`` / ``target``: a class name or model output index.
    ``attack``: an ``--attack`` name (``massif.attacks.ATTACKS``) or an attack object. Strengths:
    ``steps`` values from 0 to ``max_strength`` (the attack's default, ``ATTACKS``) or an explicit
    increasing list. ``max_images``: the first images of the class in dataset order.
    ``class_index``: an ImageNet-style ``{"0": ["n01440764", "tench"], ...}`` file.
    """

    benign: str | int
    target: str | int | None
    model: Any = "bundled"
    data: Any = None
    weights: str | None = None
    layers: tuple[str, ...] | None = None
    image_size: int | None = None
    class_index: str | None = None
    attack: Any = "fgm"
    targeted: bool = True
    max_strength: float | None = None
    steps: int = 8
    strengths: tuple[float, ...] | None = None
    nodes_per_layer: int = 8
    edges_per_node: int = 4
    importance: str = "attribution"
    max_images: int | None = None
    batch_size: int | None = None
    workers: int = 0
    device: Any = "auto"

    def __post_init__(self) -> None:
        # Lists become tuples (and "a,b" strings lists), so the request stays hashable and
        # immutable.
        for name in ("layers", "strengths"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = [s.strip() for s in value.split(",") if s.strip()]
            if value is not None:
                kind = type(value).__name__
                if hasattr(value, "tolist"):  # a NumPy array or a tensor
                    value = value.tolist()
                if isinstance(value, Mapping) or not isinstance(value, Iterable):
                    one = " of one value" if kind != type(value).__name__ else ""
                    raise MassifError(f"{name} must be a list or a comma-separated string, "
                                      f"not {kind}{one}")
                object.__setattr__(self, name, tuple(value))
        if self.strengths is not None:
            try:
                if any(isinstance(v, bool) for v in self.strengths):
                    raise TypeError
                values = tuple(float(v) for v in self.strengths)
            except (TypeError, ValueError):
                raise MassifError(f"strengths must be numbers: "
                                  f"{short(', '.join(map(str, self.strengths)))}") from None
            object.__setattr__(self, "strengths", values)
        self.check()

    def check(self) -> None:
        """The checks that need nothing loaded (the rest happen in ``resolve``)."""
        for name in ("benign", "target"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
                raise MassifError(f"{name} must be a class name or index, not "
                                  f"{type(value).__name__}")
        if self.benign is None:
            raise MassifError("give a benign class (a name or model output index)")
        if not isinstance(self.targeted, bool):  # "no" would count as True
            raise MassifError(f"targeted must be True or False, not {short(self.targeted)}")
        if self.layers is not None and not all(isinstance(v, str) for v in self.layers):
            raise MassifError("layers must be layer names")
        for name in ("weights", "class_index"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise MassifError(f"{name} must be a file path, not {type(value).__name__}")
        if self.importance not in IMPORTANCES:
            raise MassifError(f"unknown importance {short(self.importance)}; choose "
                              "attribution or votes")
        _positive_int(self.nodes_per_layer, "nodes per layer")
        _positive_int(self.edges_per_node, "edges per node", minimum=0)
        if self.batch_size is not None:
            _positive_int(self.batch_size, "batch size")
        _positive_int(self.workers, "workers", minimum=0)
        _positive_int(self.steps, "steps", minimum=2)
        if self.max_images is not None:
            _positive_int(self.max_images, "max images")
        if self.image_size is not None:
            _positive_int(self.image_size, "image size")
        if self.max_strength is not None:
            check_strength(self.max_strength, "the maximum strength")
        if self.strengths is not None:
            make_strengths(None, self.steps, self.strengths)

    def replace(self, **changes: Any) -> AnalysisRequest:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def resolve(self) -> Resolved:
        """Load the model and dataset (unless given loaded) and resolve every field."""
        from .attacks import default_max_strength, make_attack, spec_of
        from .datasets import Dataset, load_dataset
        from .models import Model, load_model

        model = self.model
        if not isinstance(model, Model):
            model = load_model(model, weights=self.weights,
                               layers=list(self.layers) if self.layers else None,
                               image_size=self.image_size)
        dataset = self.data
        if dataset is None:
            if not model.default_dataset:
                raise MassifError(f"model {model.name} has no default dataset; give one "
                                  "(--data)")
            dataset = model.default_dataset
        if not isinstance(dataset, Dataset):
            dataset = load_dataset(str(dataset), model.image_size, model.channels)
        names, label_map = class_space(model, dataset, self.class_index)
        atk = self.attack
        if not hasattr(atk, "perturb"):
            atk = make_attack(str(atk), targeted=self.targeted)
        else:
            spec_of(atk)  # one MASSIF knows (graph.json must name it)
            if atk.targeted != self.targeted:
                atk = replace(atk, targeted=self.targeted)
        b = resolve_class_of(self.benign, names, dataset, label_map)
        if self.target is None:
            raise MassifError("give a target class (--target): the attacked graph is measured "
                              "toward it, also for untargeted attacks")
        t = resolve_class_of(self.target, names, dataset, label_map)
        if b == t:
            raise MassifError(f"benign and target are the same class ({names[b]})")
        max_strength = self.max_strength or default_max_strength(atk)
        values = make_strengths(max_strength, self.steps, self.strengths)
        indices = class_images(dataset, label_map, b)
        if self.max_images:
            indices = indices[: self.max_images]
        if not indices:
            raise MassifError(f"the dataset has no images of class {names[b]}")
        if dataset.in_memory:  # (a folder's images are converted to the model's channels)
            got = dataset.load(indices[:1]).shape[1]
            if got != model.channels:
                raise MassifError(f"the dataset's images have {got} channel(s), the model "
                                  f"{model.name} takes {model.channels}")
        targets = class_images(dataset, label_map, t)[: self.max_images or None]
        return Resolved(request=self, model=model, dataset=dataset, class_names=names,
                        label_map=label_map, benign=b, target=t, attack=atk, strengths=values,
                        indices=indices, target_indices=targets)


@dataclass
class Resolved:
    """A resolved ``AnalysisRequest``: loaded parts, class indices, strengths and the key."""

    request: AnalysisRequest
    model: Model
    dataset: Dataset
    class_names: list[str]
    label_map: list[int]  # dataset label → model output
    benign: int
    target: int
    attack: Attack
    strengths: list[float]
    indices: list[int]  # the benign class's images (capped at max_images)
    target_indices: list[int] = field(default_factory=list)  # the target's, capped alike
    _key: str | None = field(default=None, repr=False)
    _batch_size: int | None = field(default=None, repr=False)

    @property
    def attack_info(self) -> AttackInfo:
        from .schemas import AttackInfo

        atk = self.attack
        return AttackInfo(name=atk.name, norm=atk.norm, targeted=atk.targeted,
                          strengths=list(self.strengths), **atk.options())

    @property
    def params(self) -> Params:
        from .schemas import Params

        r = self.request
        return Params(importance=r.importance, nodes_per_layer=r.nodes_per_layer,
                      edges_per_node=r.edges_per_node, max_images=r.max_images or None)

    @property
    def key(self) -> str:
        """The workspace key: ``<benign>-<target>-<attack>-<hash of everything>``."""
        if self._key is None:
            from .analysis.graph import NARROW_SHARE

            widest = NARROW_SHARE * self.request.nodes_per_layer
            self._key = analysis_key(
                self.model.fingerprint, self.dataset.fingerprint, self.benign, self.target,
                self.attack_info.model_dump(), self.params.model_dump(),
                self.class_names[self.benign], self.class_names[self.target],
                layers=[path + (f"@{self.model.given_layouts[lay]}"
                                if lay in self.model.given_layouts else "")
                        for lay, path in self.model.layers.items()]
                if self.model.named_layers else None,
                narrow=any(c < widest for c in self.model.layer_channels.values()))
        return self._key

    @property
    def device(self) -> torch.device:
        return resolve_device(self.request.device)

    @property
    def batch_size(self) -> int:
        """The request's batch size, or the largest that fits in memory (measured once)."""
        if self.request.batch_size is not None:
            return self.request.batch_size
        if self._batch_size is None:
            from .distributed import local_device
            from .memory import auto_batch_size

            m = self.model
            self._batch_size = auto_batch_size(
                m.module, (m.channels, m.image_size, m.image_size), len(self.strengths),
                local_device(self.device))
        return self._batch_size

    @property
    def attack_labels_value(self) -> int:
        """The label the attack's loss uses: the target (targeted) or the benign class."""
        return self.target if self.attack.targeted else self.benign


def analysis_key(model_fp: str, dataset_fp: str, benign: int, target: int,
                 attack: dict, params: dict, benign_name: str = "", target_name: str = "",
                 layers: list[str] | None = None, narrow: bool = False) -> str:
    """A stable folder name: ``<benign>-<target>-<attack>-<hash>`` (see ``Resolved.key``).
    ``layers``: the module paths analysed when they are not the model's own (``--layers``; the
    model's own leave the hash as it was). ``narrow``: some layer is narrower than 3 nodes per
    layer, so its graphs may take fewer nodes (``analysis.graph.layer_nodes``, added in
    format 3: analyses of such models made before it get another key; others keep theirs)."""
    fields = {"model": model_fp, "dataset": dataset_fp, "benign": benign, "target": target,
              "attack": attack, "params": params, "format": SCHEMA_VERSION}
    if layers:
        fields["layers"] = layers
    if narrow:
        fields["narrow"] = "third"
    blob = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return (f"{slug(benign_name or str(benign))[:40]}-{slug(target_name or str(target))[:40]}-"
            f"{slug(str(attack.get('name', 'attack')))}-{digest}")


def request_fields() -> list[str]:
    return [f.name for f in fields(AnalysisRequest)]


def _positive_int(value: object, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MassifError(f"{what} must be a whole number ≥ {minimum}, not {short(value)}")


def check_strength(value: object, what: str) -> float:
    """A finite strength in [MIN_STRENGTH, MAX_STRENGTH] (0 is allowed only as ε_0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MassifError(f"{what} must be a number, not {short(value)}")
    v = float(value)
    if not math.isfinite(v) or not MIN_STRENGTH <= v <= MAX_STRENGTH:
        raise MassifError(f"{what} must be a number from {MIN_STRENGTH:g} to {MAX_STRENGTH:g} "
                          f"(on [0, 1] images), not {short(value)}")
    return v


def make_strengths(max_strength: float | None, steps: int,
                   strengths: Sequence[float] | None = None) -> list[float]:
    """``steps`` strengths evenly spaced from 0 to ``max_strength`` (0 included), or the given
    list (0 is prepended when missing); finite, strictly increasing, each positive one at least
    ``MIN_STRENGTH``."""
    if strengths is not None:
        values = [float(s) for s in strengths]
        if not values:
            raise MassifError("the strength list is empty")
        if values[0] != 0.0:
            values = [0.0] + values
    else:
        if steps < 2:
            raise MassifError("--steps must be at least 2 (0 and the maximum strength)")
        check_strength(max_strength, "the maximum strength")
        values = [max_strength * i / (steps - 1) for i in range(steps)]  # type: ignore[operator]
    if len(values) > 1000:
        raise MassifError(f"at most 1000 strengths, not {len(values)}")
    for v in values[1:]:
        check_strength(v, "every strength above 0")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise MassifError("strengths must be strictly increasing: "
                          f"{short(', '.join(f'{v:g}' for v in values))}")
    if len(values) < 2:
        raise MassifError("give at least one strength above 0")
    return values
