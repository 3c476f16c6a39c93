"""The ``edit`` stage: delete neurons and measure the attack, before and after, in real time.

An ``Editor`` is built once per analysis (benign class ``b``, target ``t``, attack, strengths
``ε_0 = 0 < … < ε_K``) and then answers many masks fast:

1. **Construction.** Copy the model (``copy.deepcopy``, hooks dropped), so edit hooks never
   interleave with analyses that hook the shared model at the same time. On the unedited copy,
   over the benign class's images ``X`` (the first ``max_images`` in dataset order, as
   ``analyze`` takes them): the attack at every strength (FGM/FGSM: the one raw gradient per
   image, from which ``x_k`` is rebuilt on demand; PGD: the images ``x_k`` themselves), kept as
   the *transfer* set; the per-channel mean activation of every analysable layer over ``X``
   (for ``mode="mean"``); a fixed all-class sample (``sample_size`` images, the dataset's classes
   taken in turn from a seeded shuffle, so every prefix of it is stratified); and the unedited
   ("before") numbers.
2. **Mask.** Neuron ids ``layer:channel`` are checked (known layer, channel in range, not every
   channel of a layer, not empty; ``masks.parse_mask``) and grouped per layer; ``hooks.mask``
   (the analysis's hook machinery) sets their channels to 0, or to the benign mean, on the copy
   while it evaluates, and removes its hooks afterwards, also after an exception.
3. **Evaluate** (``Editor.evaluate``), in batches of ``X`` through the edited copy:
   1. *transfer*: the clean images (which the edited model classifies ``b``: the images the
      ASR counts, and the accuracy on ``b``), the stored attack at every strength, and the
      all-class sample (the accuracy on all classes). None of these images depends on the
      mask, so they run from a cut before the earliest masked layer: the activations there
      are computed once and cached (``prefix.py``), and only the rest of the model runs;
   2. *adaptive*: one forward and backward pass on the clean images gives, for FGM/FGSM, the
      attack gradient through the edited model, hence a fresh attack at every strength (PGD
      runs its own attack through the edited copy, all strengths in one batch); one forward
      pass per strength counts its successes;
   a success is ``t`` (targeted) or anything but ``b`` (untargeted). ``ASR(ε_k)`` = successes
   at ``ε_k`` / images classified ``b`` when clean, both under the edited model (DESIGN.md
   section 3); it is 0 at ``ε_0 = 0``. The adaptive part is the slow one (the whole model,
   every strength); ``evaluate(..., adaptive=False)`` gives the rest at once, and the transfer
   numbers of the last few masks are remembered for the call that adds the adaptive ones.
4. **Suggest a defense** (``Editor.suggest_defense``, see ``defense.py``): a greedy search over
   candidate neurons that masks, one at a time, the neuron with the largest drop in adaptive ASR
   at ``ε_max`` per unit of clean-accuracy cost, compared with random and top-emphasized masks
   of the same sizes.
5. **Export** (``Editor.export``): the model's state dict plus the mask, fill values and layer
   paths in one ``torch.save`` file; ``masks.apply_mask(module, file)`` rebuilds the edited
   model from any ``nn.Module`` of the same architecture, outside MASSIF.

Pitfalls: ``mode="mean"`` fills each channel with its *unedited* benign mean, also when an
earlier layer is masked too. The Editor holds the benign images, the stored attack (for PGD
``K × N`` images), the sample and the cut's activations (at most ``cache_mb``) in memory on
``device``. It is not thread-safe (one evaluation at a time; the server serialises them).
"""

from __future__ import annotations

import copy
import io
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import torch
from pydantic import BaseModel
from torch import nn

from .attacks import Attack, _direction, default_max_strength, make_attack
from .contract import Graph, write_atomic
from .datasets import Dataset, load_dataset
from .defense import DefenseResult
from .errors import MassifError
from .hooks import frozen, mask, record
from .masks import EXPORT_FORMAT, EXPORT_VERSION, MaskedModel, apply_mask, mask_ids, parse_mask
from .models import Model, load_model

__all__ = ["BeforeAfter", "DefenseResult", "EditResult", "Editor", "MaskedModel", "apply_mask",
           "parse_mask"]

T = TypeVar("T")
Mode = Literal["zero", "mean"]
Progress = Callable[[str, int, int], None]


class BeforeAfter(BaseModel, Generic[T]):
    """A measurement on the unedited model (``before``) and on the edited one (``after``)."""

    before: T
    after: T


class EditResult(BaseModel):
    """What deleting ``mask`` does: clean accuracy and ASR per strength, before and after.

    ``transfer_asr``: the adversarial images made on the unedited model, through the edited one.
    ``adaptive_asr``: a fresh attack (same attack and strengths) made through the edited model,
    what a real attacker would do. Both count among the benign images the model (unedited for
    ``before``, edited for ``after``) classifies correctly when clean (``n_correct``).
    """

    mask: list[str]
    mode: Mode
    benign: str
    target: str
    attack: str
    targeted: bool
    strengths: list[float]
    n_images: int
    n_sample: int
    n_correct: BeforeAfter[int]
    clean_accuracy_benign: BeforeAfter[float]
    clean_accuracy_all: BeforeAfter[float]
    transfer_asr: BeforeAfter[list[float]]
    adaptive_asr: BeforeAfter[list[float]] | None = None  # None: not asked for (adaptive=False)
    seconds: float

    def table(self) -> str:
        """A readable, aligned text table of the result."""
        pct = lambda v: f"{100 * v:6.1f}%"  # noqa: E731
        kind = "targeted" if self.targeted else "untargeted"
        lines = [
            f"{self.benign} → {self.target} · {self.attack} {kind} · {self.n_images} images "
            f"({self.n_correct.before} classified {self.benign} before, "
            f"{self.n_correct.after} after)",
            f"deleted ({self.mode}): {', '.join(self.mask)}",
            "",
            f"{'':<34}{'before':>8}{'after':>9}",
            f"{'clean accuracy, ' + self.benign:<34}{pct(self.clean_accuracy_benign.before)}"
            f" {pct(self.clean_accuracy_benign.after)}",
            f"{f'clean accuracy, all ({self.n_sample} images)':<34}"
            f"{pct(self.clean_accuracy_all.before)} {pct(self.clean_accuracy_all.after)}",
            "",
            f"{'ε':>8}   {'transfer ASR':^17}   {'adaptive ASR':^17}",
            f"{'':>8}   {'before':>8}{'after':>9}   {'before':>8}{'after':>9}",
        ]
        for k, eps in enumerate(self.strengths):
            fresh = (f"{pct(self.adaptive_asr.before[k])} {pct(self.adaptive_asr.after[k])}"
                     if self.adaptive_asr else f"{'—':>7} {'—':>7}")
            lines.append(f"{eps:8.3g}   {pct(self.transfer_asr.before[k])} "
                         f"{pct(self.transfer_asr.after[k])}   {fresh}")
        lines.append(f"({self.seconds:.2f} s)")
        return "\n".join(lines)


@dataclass
class _Cached:
    """The prefix's outputs (one tensor per boundary value) for the images that never change:
    the clean benign images, the transfer images (``adv[i][k - 1]``) and the sample."""

    cut: Any  # prefix.Cut
    x: list[torch.Tensor]
    adv: list[list[torch.Tensor]]
    sample: list[torch.Tensor]


class _Counts:
    """Raw counts of one measurement (see ``Editor._measure``)."""

    def __init__(self, n_strengths: int) -> None:
        self.n_images = self.n_correct = self.n_sample = self.sample_correct = 0
        self.adaptive = [0] * n_strengths
        self.transfer = [0] * n_strengths
        self.correct: list[torch.Tensor] = []  # per batch: classified benign when clean

    def rates(self, hits: list[int]) -> list[float]:
        return [h / self.n_correct if self.n_correct else 0.0 for h in hits]


def attack_label(attack: Attack) -> str:
    """``fgm``, ``fgsm``, ``pgd-l2`` or ``pgd-linf``: the name ``make_attack`` takes."""
    return f"pgd-{attack.norm}" if attack.name == "pgd" else attack.name


def _drop_hooks(module: nn.Module) -> None:
    """Remove every hook from ``module`` and its children (used on a fresh deep copy, which
    would otherwise carry along the hooks an analysis running on the original has)."""
    for m in module.modules():
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks", "_forward_hooks_with_kwargs",
                     "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs"):
            d = getattr(m, name, None)
            if d is not None and hasattr(d, "clear"):
                d.clear()


def sample_indices(dataset: Dataset, size: int, seed: int = 0) -> list[int]:
    """A fixed all-class sample: each class's images in a seeded shuffle, the classes taken in
    turn (round robin), so any prefix of the list is stratified; ``size`` at most."""
    g = torch.Generator().manual_seed(seed)
    labels = dataset.labels
    per_class = []
    for c in range(len(dataset.class_names)):
        idx = torch.nonzero(labels == c).flatten()
        per_class.append(idx[torch.randperm(len(idx), generator=g)].tolist())
    out: list[int] = []
    depth = 0
    while len(out) < size and any(depth < len(p) for p in per_class):
        out += [p[depth] for p in per_class if depth < len(p)]
        depth += 1
    return out[:size]


class Editor:
    """Delete neurons of one analysed (benign, target, attack) and measure the attack.

    Build it once (seconds: it attacks the class and measures the unedited model), then call
    ``evaluate`` for each mask (see the module docstring), ``suggest_defense`` and ``export``.

    ``model``: a loaded ``Model`` (or anything ``load_model`` takes); ``dataset``: a ``Dataset``,
    a spec for ``load_dataset``, or ``None`` for the model's own. ``benign`` / ``target``: class
    names or model output indices. ``attack``: ``fgm``, ``fgsm``, ``pgd-l2``, ``pgd-linf`` or an
    ``Attack``. ``strengths``: an increasing list (0 is prepended if missing); ``None`` means 8
    from 0 to 3.5 (L2) or 0.1 (L∞), as ``analyze``. ``max_images``: the first images of the
    class. ``sample_size``: the all-class sample for clean accuracy. ``class_index``: as in
    ``analyze``. ``progress(stage, done, total)``: called as construction attacks the class.
    ``cache_mb``: memory for the cut's cached activations (0: always run the whole model).

    Example::

        editor = Editor(massif.load_model("bundled"), None, benign="Sneaker", target="Sandal")
        print(editor.evaluate(["mixed4a:12", "mixed4b:3"]).table())
    """

    def __init__(
        self,
        model: Model | str | nn.Module,
        dataset: Dataset | str | None = None,
        *,
        benign: str | int,
        target: str | int,
        attack: str | Attack = "fgm",
        targeted: bool = True,
        strengths: Sequence[float] | None = None,
        max_images: int | None = None,
        sample_size: int = 1000,
        device: str | torch.device | None = "auto",
        batch_size: int = 256,
        class_index: str | None = None,
        progress: Progress | None = None,
        cache_mb: float = 512,
    ) -> None:
        from .pipeline import _prepare, class_images, resolve_device

        t0 = time.perf_counter()
        if batch_size < 1 or sample_size < 0 or (max_images is not None and max_images < 1):
            raise MassifError("batch size and max images must be ≥ 1, sample size ≥ 0")
        atk = attack if isinstance(attack, Attack) else make_attack(attack, targeted=targeted)
        model, dataset, atk, b, t, values, names, label_map = _prepare(
            model, dataset, atk, atk.targeted, benign, target,
            default_max_strength(atk), 8, strengths, class_index=class_index)
        self.model, self.dataset, self.attack = model, dataset, atk
        self.benign, self.target, self.strengths = b, t, values
        self.class_names = names
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.graph: Graph | None = None
        self.progress = progress
        indices = class_images(dataset, label_map, b)[: max_images or None]
        if not indices:
            raise MassifError(f"the dataset has no images of class {names[b]}")
        self.indices = indices

        net = copy.deepcopy(model.module)
        _drop_hooks(net)
        self.net: nn.Module = net.to(self.device)
        self._shim = replace(model, module=self.net)
        self.paths = dict(model.layers)  # display name → module path
        self.layer_channels = dict(model.layer_channels)

        self._x = dataset.load(indices).to(self.device)
        picked = sample_indices(dataset, sample_size)
        self._sample_x = (dataset.load(picked).to(self.device) if picked
                          else self._x[:0])
        self._sample_y = torch.tensor([label_map[int(dataset.labels[i])] for i in picked],
                                      dtype=torch.long, device=self.device)
        self._prepare_attack()
        self.cache_bytes = int(cache_mb * 2**20)
        self._cached: _Cached | None = None
        self._fx_graph: Any = None
        self._bad_cuts: set[str] = set()
        self._memo: OrderedDict[tuple, _Counts] = OrderedDict()
        before = self._measure({}, None, adaptive=False)
        self._before = before
        self.seconds_to_build = time.perf_counter() - t0

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_graph(cls, model: Model | str | nn.Module, dataset: Dataset | str | None,
                   graph: Graph, **kw: Any) -> Editor:
        """An Editor for a saved analysis: its classes, attack, strengths and image cap.

        The model (and dataset) must be the ones the graph was made with (same fingerprint).
        """
        if not isinstance(model, Model):
            model = load_model(model)
        if model.fingerprint != graph.model.fingerprint:
            raise MassifError(f"the graph was made with model {graph.model.name} "
                              f"({graph.model.fingerprint}), not {model.name} "
                              f"({model.fingerprint}); load the same weights to edit it")
        if dataset is None and model.default_dataset:
            dataset = model.default_dataset
        if dataset is not None and not isinstance(dataset, Dataset):
            dataset = load_dataset(str(dataset), model.image_size, model.channels)
        if isinstance(dataset, Dataset) and dataset.fingerprint != graph.dataset.fingerprint:
            raise MassifError(f"the graph was made on dataset {graph.dataset.name} "
                              f"({graph.dataset.fingerprint}), not {dataset.name}")
        a = graph.attack
        extra = {k: getattr(a, k) for k in ("steps", "step_ratio") if getattr(a, k, None)}
        atk = Attack(name=a.name, norm=a.norm, targeted=a.targeted, **extra)
        kw.setdefault("max_images", getattr(graph.params, "max_images", None))
        editor = cls(model, dataset, benign=graph.benign.index, target=graph.target.index,
                     attack=atk, strengths=a.strengths, **kw)
        editor.graph = graph
        return editor

    def _prepare_attack(self) -> None:
        """The transfer set, and the benign mean activation per channel, on the unedited copy."""
        from .profile import _attacked

        net, atk, n = self.net, self.attack, len(self._x)
        eps = self.strengths[1:]
        self._dir: torch.Tensor | None = None
        self._adv: torch.Tensor | None = None
        if atk.single_gradient:
            self._dir = torch.empty_like(self._x)
        else:
            self._adv = torch.empty(len(eps), *self._x.shape, dtype=self._x.dtype,
                                    device=self.device)
        sums = {name: torch.zeros(c, dtype=torch.float64)
                for name, c in self.layer_channels.items()}
        labels_all = self._labels(n)
        with frozen(net):
            for s in range(0, n, self.batch_size):
                x = self._x[s : s + self.batch_size]
                labels = labels_all[s : s + len(x)]
                x0 = x.detach().requires_grad_(True)
                with record(net, self.paths) as acts:
                    logits = net(x0)
                for name, a in acts.items():
                    sums[name] += a.detach().double().flatten(2).mean(2).sum(0).cpu()
                acts.clear()
                if atk.single_gradient:
                    self._dir[s : s + len(x)] = _direction(net, x0, labels, atk.targeted,
                                                           logits=logits).detach()
                else:
                    del logits
                    self._adv[:, s : s + len(x)] = _attacked(
                        self._shim, atk, x, labels, eps, self.batch_size).detach()
                if self.progress:
                    self.progress("edit", min(s + len(x), n), n)
        self.means = {self.paths[name]: (v / n).float().to(self.device)
                      for name, v in sums.items()}

    def _labels(self, n: int) -> torch.Tensor:
        value = self.target if self.attack.targeted else self.benign
        return torch.full((n,), value, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ masks

    def parse(self, neurons: Sequence[str] | str) -> dict[str, list[int]]:
        """Check neuron ids and group them per layer (see ``parse_mask``)."""
        return parse_mask(neurons, self.layer_channels, list(self.paths))

    def _fills(self, channels: dict[str, list[int]], mode: str) -> dict[str, torch.Tensor] | None:
        if mode not in ("zero", "mean"):
            raise MassifError(f"unknown mask mode {mode!r}; choose zero or mean")
        if mode == "zero":
            return None
        return {self.paths[lay]: self.means[self.paths[lay]] for lay in channels}

    @contextmanager
    def edited(self, neurons: Sequence[str] | str, mode: Mode = "zero") -> Iterator[nn.Module]:
        """The Editor's model copy with ``neurons`` masked (eval mode, no parameter gradients)
        inside the block; hooks, mode and flags are restored on exit, even after an error."""
        channels = self.parse(neurons)
        fills = self._fills(channels, mode)
        with frozen(self.net), mask(self.net, self._to_paths(channels), fills):
            yield self.net

    def _to_paths(self, channels: dict[str, list[int]]) -> dict[str, list[int]]:
        return {self.paths[lay]: chans for lay, chans in channels.items()}

    # ------------------------------------------------------------------ measuring

    def _hit(self, pred: torch.Tensor) -> torch.Tensor:
        return pred == self.target if self.attack.targeted else pred != self.benign

    def _measure(self, channels: dict[str, list[int]], fills: dict[str, torch.Tensor] | None,
                 *, adaptive: bool = True, transfer: bool = True,
                 ks: Sequence[int] | None = None, n_images: int | None = None,
                 n_sample: int | None = None, correct: torch.Tensor | None = None,
                 new_cut: bool = True) -> _Counts:
        """Counts through the copy with ``channels`` (display layer → channels) masked.

        ``ks``: the strength indices (≥ 1) to attack at (default all); ``n_images`` /
        ``n_sample``: use only the first images of the class / of the sample (0: none);
        ``correct``: which images the edited model classifies correctly when clean, if a
        previous call measured it. Images that do not change with the mask run from the cached
        cut (``prefix.py``) when one covers the mask; ``new_cut`` lets this call move the cut
        (which costs one pass over them).
        """
        from .profile import _attacked

        ks = list(range(1, len(self.strengths))) if ks is None else list(ks)
        eps = [self.strengths[k] for k in ks]
        out = _Counts(len(ks))
        net, atk, bs = self.net, self.attack, self.batch_size
        n = min(n_images or len(self._x), len(self._x))
        labels_all = self._labels(n)
        paths = self._to_paths(channels)
        cached = self._cut_for(set(paths), new_cut)
        run = cached.cut.suffix if cached else net
        with frozen(net), mask(net, paths, fills):
            for s in range(0, n, bs):
                e = min(s + bs, n)
                x = self._x[s:e]
                ok = correct[s:e] if correct is not None else None
                if adaptive and atk.single_gradient and ks:
                    x0 = x.detach().requires_grad_(True)
                    logits = net(x0)
                    if ok is None:
                        ok = logits.argmax(1) == self.benign
                    direction = _direction(net, x0, labels_all[s:e], atk.targeted,
                                           logits=logits).detach()
                    del logits, x0
                elif ok is None:
                    with torch.inference_mode():
                        inp = [t[s:e] for t in cached.x] if cached else [x]
                        ok = run(*inp).argmax(1) == self.benign
                out.correct.append(ok)
                out.n_images += len(x)
                out.n_correct += int(ok.sum())
                if not ks or not bool(ok.any()):
                    continue
                # Whole batches (successes counted among the correct images only): a subset's
                # new batch size would make oneDNN build new kernels, costing more than it saves.
                if adaptive:
                    if atk.single_gradient:
                        adv = atk.from_direction(x, direction, eps)
                    else:
                        adv = _attacked(self._shim, atk, x, labels_all[s:e], eps, bs).detach()
                    self._count(net, lambda j: [adv[j]], ok, out.adaptive)  # noqa: B023
                if transfer:
                    if cached:
                        self._count(run, lambda j: [t[ks[j] - 1][s:e] for t in cached.adv],
                                    ok, out.transfer)
                    else:
                        self._count(net, lambda j: [self._stored(ks[j], s, e)], ok,
                                    out.transfer)
            m = min(len(self._sample_x) if n_sample is None else n_sample, len(self._sample_x))
            with torch.inference_mode():
                for s in range(0, m, bs):
                    e = min(s + bs, m)
                    inp = [t[s:e] for t in cached.sample] if cached else [self._sample_x[s:e]]
                    pred = run(*inp).argmax(1)
                    out.sample_correct += int((pred == self._sample_y[s:e]).sum())
            out.n_sample = m
        return out

    def _stored(self, k: int, s: int, e: int) -> torch.Tensor:
        """The transfer images at strength index ``k`` (≥ 1) of the benign images ``s:e``."""
        if self._dir is not None:
            return self.attack.from_direction(self._x[s:e], self._dir[s:e],
                                              [self.strengths[k]])[0]
        return self._adv[k - 1][s:e]

    def _count(self, run: Callable[..., torch.Tensor],
               inputs: Callable[[int], list[torch.Tensor]], correct: torch.Tensor,
               hits: list[int]) -> None:
        with torch.inference_mode():
            for j in range(len(hits)):
                hits[j] += int((self._hit(run(*inputs(j)).argmax(1)) & correct).sum())

    # ------------------------------------------------------------------ the cut (prefix.py)

    def _cut_for(self, masked: set[str], new_cut: bool) -> _Cached | None:
        """The cached cut covering the masked layers (module paths), if any; with ``new_cut``,
        moved to the latest layer before the earliest masked one when the current one does
        not cover the mask."""
        from . import prefix

        if self._cached is not None and self._cached.cut.covers(masked):
            return self._cached
        if not masked or not new_cut or self.cache_bytes <= 0:
            return None
        if self._fx_graph is None:
            with frozen(self.net):
                self._fx_graph = prefix.trace(self.net, list(self.paths.values())) or False
        if self._fx_graph is False:
            return None
        for path in reversed(list(self.paths.values())):
            if path in self._bad_cuts:
                continue
            c = prefix.cut(self.net, self._fx_graph, path, list(self.paths.values()))
            if c is None:
                self._bad_cuts.add(path)
                continue
            if not c.covers(masked):
                continue
            with frozen(self.net):
                ok = prefix.check(c, self.net, self._x[:8])
                built = self._fill_cut(c) if ok else None
            if built is None:
                self._bad_cuts.add(path)
                continue
            self._cached = built
            return built
        return None

    @torch.inference_mode()
    def _fill_cut(self, c: Any) -> _Cached | None:
        """Run the prefix over the clean, transfer and sample images (None if too big)."""
        n, k_all = len(self._x), len(self.strengths) - 1
        per_image = sum(t[0].numel() * t.element_size() for t in c.prefix(self._x[:1]))
        if per_image * (n * (k_all + 1) + len(self._sample_x)) > self.cache_bytes:
            return None
        self._cached = None  # free the old cut's tensors first

        def run(images: Callable[[int, int], torch.Tensor], total: int) -> list[torch.Tensor]:
            parts = [c.prefix(images(s, min(s + self.batch_size, total)))
                     for s in range(0, total, self.batch_size)]
            return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]

        x = run(lambda s, e: self._x[s:e], n)
        adv = [run(lambda s, e, k=k: self._stored(k, s, e), n) for k in range(1, k_all + 1)]
        sample = (run(lambda s, e: self._sample_x[s:e], len(self._sample_x))
                  if len(self._sample_x) else [t[:0] for t in x])
        # adv: per boundary tensor, [K, N, ...] as one list indexed by strength
        return _Cached(c, x, [[a[i] for a in adv] for i in range(len(x))], sample)

    # ------------------------------------------------------------------ public verbs

    def evaluate(self, neurons: Sequence[str] | str, mode: Mode = "zero", *,
                 adaptive: bool = True) -> EditResult:
        """Delete ``neurons`` (ids ``layer:channel``) and measure, before and after.

        ``mode="zero"`` sets each masked channel's output to 0; ``"mean"`` to its mean over the
        clean benign images. Bad ids raise a one-line ``MassifError``.

        ``adaptive=False`` skips the fresh attack (``adaptive_asr`` is then ``None``): it is
        the slow part (a forward and backward pass, then one forward pass per strength, over
        the class; for PGD ``steps`` forward and backward passes per strength), while the rest
        reuses the cached prefix. A page can show that first and ask again with
        ``adaptive=True``: the second call then measures only the fresh attack (the last few
        masks' transfer numbers are remembered).
        """
        t0 = time.perf_counter()
        channels = self.parse(neurons)
        fills = self._fills(channels, mode)
        key = (tuple(mask_ids(channels)), mode)
        after = self._memo.get(key)
        if after is None:
            after = self._measure(channels, fills, adaptive=False)
            self._memo[key] = after
            while len(self._memo) > 16:
                self._memo.popitem(last=False)
        self._memo.move_to_end(key)
        fresh = None
        if adaptive:
            fresh = self._measure(channels, fills, transfer=False, n_sample=0,
                                  correct=torch.cat(after.correct))
        before = self._before
        zero = [0.0]
        return EditResult(
            mask=list(key[0]), mode=mode, benign=self.class_names[self.benign],
            target=self.class_names[self.target], attack=attack_label(self.attack),
            targeted=self.attack.targeted, strengths=list(self.strengths),
            n_images=len(self._x), n_sample=len(self._sample_x),
            n_correct=BeforeAfter[int](before=before.n_correct, after=after.n_correct),
            clean_accuracy_benign=BeforeAfter[float](
                before=before.n_correct / before.n_images, after=after.n_correct / after.n_images),
            clean_accuracy_all=BeforeAfter[float](
                before=_ratio(before.sample_correct, before.n_sample),
                after=_ratio(after.sample_correct, after.n_sample)),
            transfer_asr=BeforeAfter[list[float]](
                before=zero + before.rates(before.transfer),
                after=zero + after.rates(after.transfer)),
            adaptive_asr=BeforeAfter[list[float]](
                before=zero + before.rates(before.transfer),
                after=zero + fresh.rates(fresh.adaptive)) if fresh else None,
            seconds=time.perf_counter() - t0,
        )

    def suggest_defense(self, budget: int, candidates: Sequence[str] | None = None,
                        graph: Graph | None = None, *, mode: Mode = "zero",
                        random_draws: int = 5, seed: int = 0, search_images: int | None = 256,
                        progress: Progress | None = None) -> DefenseResult:
        """A greedy defense of at most ``budget`` neurons (see ``defense.suggest_defense``)."""
        from .defense import suggest_defense

        return suggest_defense(self, budget, candidates, graph or self.graph, mode=mode,
                               random_draws=random_draws, seed=seed,
                               search_images=search_images, progress=progress)

    def export(self, neurons: Sequence[str] | str, path: str | Path,
               mode: Mode = "zero") -> Path:
        """Write the edited model to ``path`` (atomically) as one ``torch.save`` dict::

            {"format": "massif-edited-model", "version": 1,
             "state_dict": {...},          # the model's weights (unchanged by the edit)
             "mask": ["mixed4a:12", ...],  # the deleted neurons
             "mode": "zero" | "mean",
             "values": {"mixed4a": tensor[C], ...},  # fill per channel (mode "mean" only)
             "layers": {"mixed4a": "mixed4a", ...},  # layer name → module path
             "model": "bundled", "fingerprint": "..."}

        It loads with ``torch.load(path, weights_only=True)``; ``apply_mask`` turns it (and an
        ``nn.Module`` of the same architecture) into the edited model.
        """
        channels = self.parse(neurons)
        fills = self._fills(channels, mode)
        path = Path(path)
        if path.exists() and not path.is_file():
            raise MassifError(f"{path} exists and is not a regular file; give a file name")
        payload = {
            "format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "mask": mask_ids(channels), "mode": mode,
            "values": {lay: fills[self.paths[lay]].detach().cpu().clone() for lay in channels}
            if fills else {},
            "layers": dict(self.paths), "model": self.model.name,
            "fingerprint": self.model.fingerprint,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return write_atomic(path, buf.getvalue())


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0
