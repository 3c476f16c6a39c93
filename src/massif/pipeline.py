"""``analyze``: the whole analysis of one (benign, target, attack) as one call.

Stages: load the model and dataset → ``profile.profile_neurons`` (importance and activation of
every neuron at every strength, ASR) → ``graph.select`` / ``graph.merged_nodes`` (groups,
vulnerability) → ``profile.profile_edges`` (influence into the graph's nodes, faithfulness) →
``graph.edges`` → a ``contract.Graph``. A notebook user calls ``massif.analyze``; the CLI and the
server call the same function.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from . import graph as graph_stage
from .attacks import Attack, default_max_strength, make_attack
from .contract import (
    AttackInfo,
    BenignRef,
    DatasetRef,
    Faithfulness,
    Graph,
    Metrics,
    ModelRef,
    Params,
    TargetRef,
)
from .datasets import Dataset, load_dataset
from .errors import MassifError
from .models import Model, load_model
from .profile import Checkpoint, Progress, profile_edges, profile_neurons
from .store import analysis_key

RANDOM_DRAWS = 5


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise MassifError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MassifError("device cuda asked for, but PyTorch sees no CUDA GPU")
    return dev


def make_strengths(max_strength: float, steps: int,
                   strengths: Sequence[float] | None = None) -> list[float]:
    """``steps`` strengths evenly spaced from 0 to ``max_strength`` (0 included), or the given
    list (0 is prepended when missing); it must be finite, non-negative, strictly increasing."""
    if strengths is not None:
        values = [float(s) for s in strengths]
        if not values:
            raise MassifError("the strength list is empty")
        if values[0] != 0.0:
            values = [0.0] + values
    else:
        if steps < 2:
            raise MassifError("--steps must be at least 2 (0 and the maximum strength)")
        if not (math.isfinite(max_strength) and max_strength > 0):
            raise MassifError(f"the maximum strength must be a positive number, "
                              f"not {max_strength}")
        values = [max_strength * i / (steps - 1) for i in range(steps)]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise MassifError(f"strengths must be finite and non-negative: {values}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise MassifError(f"strengths must be strictly increasing: {values}")
    if len(values) < 2:
        raise MassifError("give at least one strength above 0")
    return values


def class_space(model: Model, dataset: Dataset,
                class_index: str | None = None) -> tuple[list[str], list[int]]:
    """The model's class names and, for each dataset label, the model output it corresponds to.

    Dataset classes are matched to model classes by name (case and punctuation ignored), by an
    ImageNet-style class index file (``{"0": ["n01440764", "tench"], ...}``, for folders named by
    WordNet id), or one to one when the model's classes have no names and the counts agree.
    """
    import json

    from .datasets import resolve_class

    data_names = dataset.class_names
    names = model.class_names
    generic = names is None or names == [str(i) for i in range(len(names))]
    if generic:
        n_out = len(names) if names else len(data_names)
        if n_out != len(data_names):
            raise MassifError(f"the model has {n_out} outputs but the dataset "
                              f"{len(data_names)} classes; they must match one to one")
        return list(data_names), list(range(len(data_names)))
    if class_index:
        try:
            table = json.loads(open(class_index).read())
            wnid = {str(v[0]): int(k) for k, v in table.items()}
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise MassifError(f"cannot read class index {class_index}: {e}") from None
    else:
        wnid = {}
    mapping = []
    for d in data_names:
        if d in wnid:
            mapping.append(wnid[d])
            continue
        try:
            mapping.append(resolve_class(d, names))
        except MassifError:
            raise MassifError(
                f"dataset class {d!r} matches none of the model's classes; name the folders "
                "after the model's classes or pass an ImageNet-style class index file "
                "(--class-index)") from None
    return list(names), mapping


def _prepare(model, dataset, attack, targeted, benign, target, max_strength, steps, strengths,
             layers=None, class_index=None):
    if not isinstance(model, Model):
        model = load_model(model, layers=layers)
    if dataset is None:
        if not model.default_dataset:
            raise MassifError(f"model {model.name} has no default dataset; give one (--data)")
        dataset = model.default_dataset
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(str(dataset), model.image_size, model.channels)
    names, label_map = class_space(model, dataset, class_index)
    atk = attack if isinstance(attack, Attack) else make_attack(attack, targeted=targeted)
    if max_strength is None:
        max_strength = default_max_strength(atk)
    b = _resolve(benign, names, dataset, label_map)
    if target is None:
        raise MassifError("give a target class (--target): the attacked graph is measured "
                          "toward it, also for untargeted attacks")
    t = _resolve(target, names, dataset, label_map)
    if b == t:
        raise MassifError(f"benign and target are the same class ({names[b]})")
    values = make_strengths(max_strength, steps, strengths)
    return model, dataset, atk, b, t, values, names, label_map


def _resolve(name: str | int, names: list[str], dataset: Dataset, label_map: list[int]) -> int:
    """A class given by model class name or index, or by dataset folder name."""
    from .datasets import resolve_class

    try:
        return resolve_class(name, names)
    except MassifError:
        if isinstance(name, str) and name in dataset.class_names:
            return label_map[dataset.class_names.index(name)]
        raise


def class_images(dataset: Dataset, label_map: list[int], output: int) -> list[int]:
    """Indices of the dataset's images whose class is model output ``output``."""
    labels = [i for i, o in enumerate(label_map) if o == output]
    return torch.nonzero(torch.isin(dataset.labels, torch.tensor(labels))).flatten().tolist()


def request_key(model: Model, dataset: Dataset, benign: str | int, target: str | int,
                attack: str = "fgm", targeted: bool = True, max_strength: float | None = None,
                steps: int = 8, strengths: Sequence[float] | None = None,
                nodes_per_layer: int = 8, edges_per_node: int = 4,
                importance: str = "attribution", max_images: int | None = None,
                class_index: str | None = None) -> str:
    """The workspace key ``analyze`` with these arguments would produce (before running it)."""
    model, dataset, atk, b, t, values, names, _ = _prepare(
        model, dataset, attack, targeted, benign, target, max_strength, steps, strengths,
        class_index=class_index)
    return analysis_key(model.fingerprint, dataset.fingerprint, b, t,
                        _attack_info(atk, values).model_dump(),
                        _params(importance, nodes_per_layer, edges_per_node,
                                max_images).model_dump(),
                        names[b], names[t])


def _attack_info(atk: Attack, values: list[float]) -> AttackInfo:
    return AttackInfo(name=atk.name, norm=atk.norm, targeted=atk.targeted, strengths=values,
                      **({"steps": atk.steps, "step_ratio": atk.step_ratio}
                         if atk.name == "pgd" else {}))


def _params(importance: str, nodes_per_layer: int, edges_per_node: int,
            max_images: int | None) -> Params:
    extra = {"max_images": max_images} if max_images else {}
    return Params(importance=importance, nodes_per_layer=nodes_per_layer,
                  edges_per_node=edges_per_node, **extra)


def analyze(
    model: str | Model | nn.Module = "bundled",
    dataset: str | Dataset | None = None,
    *,
    benign: str | int,
    target: str | int,
    attack: str | Attack = "fgm",
    targeted: bool = True,
    max_strength: float | None = None,
    steps: int = 8,
    strengths: Sequence[float] | None = None,
    nodes_per_layer: int = 8,
    edges_per_node: int = 4,
    importance: str = "attribution",
    layers: list[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = "auto",
    max_images: int | None = None,
    class_index: str | None = None,
    progress: Progress | None = None,
    resume_dir: str | Path | None = None,
) -> Graph:
    """Analyse how ``attack`` turns ``benign`` images into ``target`` and return the merged graph.

    ``model``: ``"bundled"`` (default), ``"torchvision:NAME"``, ``"file.py:factory"``, a loaded
    ``Model`` or an ``nn.Module`` taking [0, 1] images. ``dataset``: ``"fashion-mnist"``, an
    ImageFolder path or a ``Dataset``; ``None`` means the model's own (Fashion-MNIST for the
    bundled model). ``attack``: ``fgm`` (L2), ``fgsm`` (L∞), ``pgd-l2``, ``pgd-linf`` (``pgd``)
    or an ``Attack``. Strengths: ``steps`` values from 0 to ``max_strength`` (3.5 for L2, 0.1 for
    L∞ by default), or an explicit increasing list. ``max_images`` caps the class's images (the
    first ones in dataset order). ``class_index`` maps dataset folders named by WordNet id to
    ImageNet outputs (see ``class_space``). ``progress(stage, done, total)`` is called as
    batches finish.

    With ``resume_dir``, running sums are saved there every few seconds, so a killed run of
    the same request resumes where it stopped; the files are removed once the graph is built.
    The model is put on ``device`` for the run and back where it was afterwards.
    """
    if importance not in ("attribution", "votes"):
        raise MassifError(f"unknown importance {importance!r}; choose attribution or votes")
    if nodes_per_layer < 1 or edges_per_node < 0 or batch_size < 1:
        raise MassifError("nodes per layer and batch size must be ≥ 1, edges per node ≥ 0")
    model, dataset, atk, b, t, values, names, label_map = _prepare(
        model, dataset, attack, targeted, benign, target, max_strength, steps, strengths, layers,
        class_index)
    indices = class_images(dataset, label_map, b)
    if max_images:
        indices = indices[:max_images]
    if not indices:
        raise MassifError(f"the dataset has no images of class {names[b]}")
    dev = resolve_device(device)
    key = analysis_key(model.fingerprint, dataset.fingerprint, b, t,
                       _attack_info(atk, values).model_dump(),
                       _params(importance, nodes_per_layer, edges_per_node,
                               max_images).model_dump()) + f"-bs{batch_size}"
    folder = Path(resume_dir) if resume_dir else None
    ckpt1 = Checkpoint(folder / f".{key}.profile.pt" if folder else None, key)
    home = model.device
    model.to(dev)
    try:
        prof = profile_neurons(model, dataset, indices, b, t, atk, values, importance,
                               votes_top_k=nodes_per_layer, batch_size=batch_size,
                               progress=progress, checkpoint=ckpt1)
        benign_sets, attacked_sets = graph_stage.select(prof, nodes_per_layer)
        nodes = graph_stage.merged_nodes(prof, benign_sets, attacked_sets)
        emphasized = {}
        for n in nodes:
            if n.group == "emphasized":
                emphasized.setdefault(n.layer, []).append(n.channel)
        draws = graph_stage.random_masks(emphasized, model.layer_channels, RANDOM_DRAWS)
        node_map = graph_stage.node_channels(nodes)
        key2 = f"{key}-{hashlib.sha256(repr((node_map, draws)).encode()).hexdigest()[:8]}"
        ckpt2 = Checkpoint(folder / f".{key}.edges.pt" if folder else None, key2)
        infl = profile_edges(model, dataset, indices, b, t, atk, values[-1], node_map,
                             emphasized, draws, batch_size=batch_size, progress=progress,
                             checkpoint=ckpt2)
    finally:
        model.to(home)
    ckpt1.clear()
    ckpt2.clear()
    return Graph(
        model=ModelRef(name=model.name, fingerprint=model.fingerprint),
        dataset=DatasetRef(name=dataset.name, fingerprint=dataset.fingerprint),
        benign=BenignRef(index=b, name=names[b], n_images=len(indices)),
        target=TargetRef(index=t, name=names[t]),
        attack=_attack_info(atk, values),
        params=_params(importance, nodes_per_layer, edges_per_node, max_images),
        layers=list(model.layers),
        metrics=Metrics(
            clean_accuracy=prof.clean_accuracy,
            attack_success_rate=prof.attack_success_rate,
            divergence_layer=graph_stage.divergence_layer(prof.layers, benign_sets,
                                                          attacked_sets),
            faithfulness=Faithfulness(
                masked_emphasized_asr=infl.masked_emphasized_asr,
                masked_random_asr=infl.masked_random_asr,
                n_masked=sum(len(v) for v in emphasized.values()),
                random_draws=infl.random_draws,
            ),
        ),
        nodes=nodes,
        edges=graph_stage.edges(prof.layers, nodes, infl, edges_per_node),
    )
