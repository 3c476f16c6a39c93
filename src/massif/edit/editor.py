"""The ``edit`` stage: delete neurons and measure the attack, before and after, in real time.

An ``Editor`` is built once per analysis (an ``AnalysisRequest``, or a saved graph with
``Editor.from_graph``) and then answers many masks fast. Its measuring core is a
``session.Session`` (the class's images, the stored attack, a private model copy; see there):

1. **Mask.** Neuron ids ``layer:channel`` are checked (known layer, channel in range, not every
   channel of a layer, not empty; ``masks.parse_mask``) and grouped per layer.
2. **Evaluate** (``Editor.evaluate``): the session's counts with the mask (transfer: the stored
   attack; adaptive: a fresh attack through the edited model) and without it (``before``),
   as rates. ``ASR(ε_k)`` = successes at ``ε_k`` / images classified ``b`` when clean, both
   under the model measured (docs/method.md); it is 0 at ``ε_0 = 0``. The adaptive part is
   the slow one; ``evaluate(..., adaptive=False)`` gives the rest at once, and the transfer
   numbers of the last few masks are remembered for the call that adds the adaptive ones.
3. **Suggest a defense** (``Editor.suggest_defense``, see ``defense.py``); **deletion curves**
   (``Editor.curves``, see ``curves.py``): the ASR and the clean accuracy as the top ``k``
   neurons of several rankings are deleted.
   **One image** (``Editor.gallery``, ``Editor.image``): the class's images through the
   attack, one at a time (``one_image.py``).
4. **Export** (``Editor.export``): the model's state dict plus the mask, fill values and layer
   paths in one ``torch.save`` file; ``masks.apply_mask(module, file)`` rebuilds the edited
   model from any ``nn.Module`` of the same architecture, outside MASSIF.

Pitfalls: ``mode="mean"`` fills each channel with its *unedited* benign mean, also when an
earlier layer is masked too. The Editor holds the benign images, the stored attack (for PGD
``K × N`` images), the sample and the cut's activations (at most ``cache_mb``) in memory on
the device. One thread at a time (``fork()`` gives another over the same images).
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..attacks import attack_label
from ..errors import MassifError
from ..request import AnalysisRequest, Resolved
from ..schemas import Graph
from . import one_image
from .cache import AUTO
from .checks import CheckResult, check_attack, parse_checks, run_checks, warnings_of
from .curves import Curves, deletion_curves
from .defense import SHORTLIST, DefenseResult, suggest_defense
from .masks import export_edited
from .one_image import Gallery, ImageDetail
from .session import Mask, Session

__all__ = ["BeforeAfter", "EditResult", "Editor"]

T = TypeVar("T")
Mode = Literal["zero", "mean"]
Progress = Callable[[str, int, int], None]


class BeforeAfter(BaseModel, Generic[T]):
    """A measurement on the unedited model (``before``) and on the edited one (``after``)."""

    model_config = ConfigDict(extra="forbid")

    before: T
    after: T


class EditResult(BaseModel):
    """What deleting ``mask`` does: clean accuracy and ASR per strength, before and after.

    ``transfer_asr``: the adversarial images made on the unedited model, through the edited one.
    ``adaptive_asr``: a fresh attack (same attack and strengths) made through the edited model,
    what a real attacker would do. Both count among the benign images the model (unedited for
    ``before``, edited for ``after``) classifies correctly when clean (``n_correct``).
    """

    model_config = ConfigDict(extra="forbid")

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
    checks: list[CheckResult] | None = None  # stronger attacks at ε_max (checks.py); None: none
    warnings: list[str] = []  # one line per check whose gain shrank (gradient masking?)
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
        if self.checks:
            lines += ["", f"stronger attacks at ε = {self.checks[0].epsilon:g}, through the "
                      "model before and after",
                      "(ASR: among the images right when clean; robust accuracy: the class's "
                      "images still right)",
                      f"{'':<14}{'ASR':^17}   {'robust accuracy':^17}",
                      f"{'':<14}{'before':>8}{'after':>9}   {'before':>8}{'after':>9}"]
            for c in self.checks:
                lines.append(f"{c.name:<14}{pct(c.asr.before)} {pct(c.asr.after)}   "
                             f"{pct(c.robust_accuracy.before)} {pct(c.robust_accuracy.after)}"
                             + ("   ⚠" if c.masking else ""))
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"({self.seconds:.2f} s)")
        return "\n".join(lines)


class Editor:
    """Delete neurons of one analysed (benign, target, attack) and measure the attack.

    Build it once (seconds: it attacks the class and measures the unedited model), then call
    ``evaluate`` for each mask (see the module docstring), ``suggest_defense`` and ``export``.

    ``request``: an ``AnalysisRequest`` (or a ``Resolved`` one), or its fields as arguments, the
    first two positional ones being the model and the dataset, as ``massif.analyze`` takes
    them: ``Editor("bundled", benign="Sneaker", target="Sandal")``. ``sample_size``: the
    all-class sample for clean accuracy. ``progress(stage, done, total)``: called as
    construction attacks the class. ``cache_mb``: memory for the cut's cached activations
    (0: always run the whole model). ``net`` and ``fx_graph``: see ``session.Session``.

    Example::

        editor = massif.Editor("bundled", benign="Sneaker", target="Sandal")
        print(editor.evaluate(["mixed4a:12", "mixed4b:3"]).table())
    """

    def __init__(self, request: AnalysisRequest | Resolved | Any = "bundled",
                 dataset: Any = None, *, sample_size: int = 1000, cache_mb: float = 512,
                 progress: Progress | None = None, net: nn.Module | None = None,
                 fx_graph: Any = AUTO, graph: Graph | None = None, **fields: Any) -> None:
        t0 = time.perf_counter()
        if isinstance(request, Resolved):
            resolved = request
        else:
            if not isinstance(request, AnalysisRequest):
                request = AnalysisRequest(model=request, data=dataset, **fields)
            elif fields or dataset is not None:
                request = request.replace(
                    **fields, **({"data": dataset} if dataset is not None else {}))
            resolved = request.resolve()
        self.session = Session(resolved, net=net, fx_graph=fx_graph, sample_size=sample_size,
                               cache_mb=cache_mb, progress=progress)
        self._init_from_session(graph)
        self.seconds_to_build = time.perf_counter() - t0

    def _init_from_session(self, graph: Graph | None) -> None:
        ses = self.session
        self.resolved, self.model, self.dataset = ses.resolved, ses.model, ses.dataset
        self.attack, self.benign, self.target = ses.attack, ses.benign, ses.target
        self.strengths, self.class_names, self.indices = ses.strengths, ses.class_names, \
            ses.indices
        self.paths, self.layer_channels = ses.paths, ses.layer_channels
        self.graph = graph
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._means: Any = None  # both classes' mean channel maxima, for ``image``

    @classmethod
    def from_graph(cls, request: AnalysisRequest | Any, dataset: Any, graph: Graph,
                   **kw: Any) -> Editor:
        """An Editor for a saved analysis: its classes, attack, strengths and image cap.

        ``request``: an ``AnalysisRequest`` naming the model and dataset (its class and attack
        fields are replaced by the graph's), or a model as ``Editor`` takes it. The model and
        dataset must be the ones the graph was made with (same fingerprints).
        """
        run_opts = {k: kw.pop(k) for k in ("device", "batch_size", "max_images") if k in kw}
        resolved = cls.graph_request(request, dataset, graph, **run_opts).resolve()
        cls.check_graph(resolved, graph)
        return cls(resolved, graph=graph, **kw)

    @staticmethod
    def graph_request(request: AnalysisRequest | Any, dataset: Any, graph: Graph,
                      **run_opts: Any) -> AnalysisRequest:
        """The request of a saved analysis: ``request``'s model and data (or a model and a
        dataset as ``Editor`` takes them) with the graph's classes, attack, strengths and image
        cap; ``run_opts``: ``device``, ``batch_size``, ``max_images``."""
        from ..attacks import attack_from_record

        if not isinstance(graph, Graph):
            raise MassifError(f"graph must be a Graph (massif.Graph.load(path)), not "
                              f"{type(graph).__name__}")
        a = graph.attack
        atk = attack_from_record(a)
        run_opts.setdefault("max_images", graph.params.max_images)
        pair = dict(benign=graph.benign.index, target=graph.target.index, attack=atk,
                    targeted=a.targeted, strengths=tuple(a.strengths),
                    nodes_per_layer=graph.params.nodes_per_layer,
                    edges_per_node=graph.params.edges_per_node,
                    importance=graph.params.importance, **run_opts)
        if isinstance(request, AnalysisRequest):
            return request.replace(**pair, **({"data": dataset} if dataset is not None else {}))
        return AnalysisRequest(model=request, data=dataset, **pair)

    @staticmethod
    def check_graph(resolved: Resolved, graph: Graph) -> None:
        """Refuse a graph made with another model or dataset (by fingerprint)."""
        model, data = resolved.model, resolved.dataset
        if model.fingerprint != graph.model.fingerprint:
            raise MassifError(f"the graph was made with model {graph.model.name} "
                              f"({graph.model.fingerprint}), not {model.name} "
                              f"({model.fingerprint}); load the same weights to edit it")
        if data.fingerprint != graph.dataset.fingerprint:
            raise MassifError(f"the graph was made on dataset {graph.dataset.name} "
                              f"({graph.dataset.fingerprint}), not {data.name}")

    def fork(self) -> Editor:
        """Another Editor over the same images and stored attack with its own model copy (for a
        long job, such as a defense search, beside quick evaluations)."""
        twin = object.__new__(Editor)
        twin.session = self.session.fork()
        twin._init_from_session(self.graph)
        twin.seconds_to_build = 0.0
        return twin

    # ------------------------------------------------------------------ public verbs

    def forget(self) -> None:
        """Drop the remembered transfer numbers of recent masks (benchmarks measure afresh)."""
        self._memo.clear()

    @property
    def net(self) -> nn.Module:
        """The Editor's own copy of the model (unedited outside ``edited``)."""
        return self.session.net

    def parse(self, neurons: Sequence[str] | str, mode: Mode = "zero") -> Mask:
        """Check neuron ids and group them per layer (see ``masks.parse_mask``)."""
        return self.session.parse(neurons, mode)

    @contextmanager
    def edited(self, neurons: Sequence[str] | str, mode: Mode = "zero") -> Iterator[nn.Module]:
        """The Editor's model copy with ``neurons`` masked (eval mode, no parameter gradients)
        inside the block; hooks, mode and flags are restored on exit, even after an error."""
        with self.session.edited(self.parse(neurons, mode)) as net:
            yield net

    def evaluate(self, neurons: Sequence[str] | str, mode: Mode = "zero", *,
                 adaptive: bool = True,
                 checks: Sequence[str] | str | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> EditResult:
        """Delete ``neurons`` (ids ``layer:channel``) and measure, before and after.

        ``mode="zero"`` sets each masked channel's output to 0; ``"mean"`` to its mean over the
        clean benign images. Bad ids raise a one-line ``MassifError``.

        ``adaptive=False`` skips the fresh attack (``adaptive_asr`` is then ``None``): it is
        the slow part (a forward and backward pass, then one forward pass per strength, over
        the class; for PGD ``steps`` forward and backward passes per strength), while the rest
        reuses the cached prefix. A page can show that first and ask again with
        ``adaptive=True``: the second call then measures only the fresh attack (the last few
        masks' transfer numbers are remembered).

        ``checks``: stronger attacks that know the mask, run at ``ε_max`` before and after
        (``pgd-restarts``, ``apgd-ce``, ``apgd-t``; ``checks.py``): their ASR and robust
        accuracy in ``checks``, and in ``warnings`` a line for each under which the deletion's
        gain shrinks to half or less of its gain under the fresh attack (gradient masking?).
        Each costs 50 to 500 forward and backward passes over the class, twice; off by default.
        ``progress(stage, done, total)`` and ``cancelled()`` follow and stop them (batch by
        batch; a stop raises ``session.Cancelled``), as ``curves`` does.
        """
        t0 = time.perf_counter()
        ses = self.session
        names = parse_checks(checks)
        for name in names:  # a check this analysis cannot run is refused before any work
            check_attack(ses, name)
        m = self.parse(neurons, mode)
        after = self._memo.get(m.key)
        if after is None:
            after = ses.measure(m, adaptive=False)
            self._memo[m.key] = after
            while len(self._memo) > 16:
                self._memo.popitem(last=False)
        self._memo.move_to_end(m.key)
        fresh = None
        if adaptive:
            fresh = ses.measure(m, transfer=False, n_sample=0, correct=torch.cat(after.correct))
        before = ses.before
        zero = [0.0]
        checked = None
        if names:
            top = (before.rates(before.transfer)[-1], fresh.rates(fresh.adaptive)[-1]) \
                if fresh and len(self.strengths) > 1 else None
            checked = run_checks(ses, m, names, top, progress=progress, cancelled=cancelled)
        return EditResult(
            mask=m.ids, mode=mode, benign=self.class_names[self.benign],
            target=self.class_names[self.target], attack=attack_label(self.attack),
            targeted=self.attack.targeted, strengths=list(self.strengths),
            n_images=len(ses.images), n_sample=len(ses.sample_images),
            n_correct=BeforeAfter[int](before=before.n_correct, after=after.n_correct),
            clean_accuracy_benign=BeforeAfter[float](before=before.accuracy,
                                                     after=after.accuracy),
            clean_accuracy_all=BeforeAfter[float](before=before.sample_accuracy,
                                                  after=after.sample_accuracy),
            transfer_asr=BeforeAfter[list[float]](
                before=zero + before.rates(before.transfer),
                after=zero + after.rates(after.transfer)),
            adaptive_asr=BeforeAfter[list[float]](
                before=zero + before.rates(before.transfer),
                after=zero + fresh.rates(fresh.adaptive)) if fresh else None,
            checks=checked,
            warnings=warnings_of(checked or [], f"the fresh {attack_label(self.attack)}"),
            seconds=time.perf_counter() - t0,
        )

    def gallery(self, strength_index: int | None = None) -> Gallery:
        """Every image of the class with its prediction clean and attacked at strength
        ``strength_index`` (default the largest); see ``one_image``."""
        return one_image.gallery(self.session, strength_index)

    def image(self, position: int, graph: Graph | None = None) -> ImageDetail:
        """Image ``position`` of the class through the attack: predictions, the graph's
        neurons' activations, margins and crossing layer at every strength, and its pictures
        (``one_image``). ``graph``: the analysis's graph (default the one given when built)."""
        graph = graph or self.graph
        if graph is None:
            raise MassifError("give the analysis's graph (Editor.from_graph, or graph=)")
        if self._means is None and self.resolved.target_indices:
            self._means = one_image.session_means(self.session)
        return one_image.image(self.session, graph, self._means, position)

    def suggest_defense(self, budget: int, candidates: Sequence[str] | None = None,
                        graph: Graph | None = None, *, start: Sequence[str] | str | None = None,
                        mode: Mode = "zero",
                        random_draws: int = 5, seed: int = 0, search_images: int | None = 256,
                        shortlist: int | None = SHORTLIST, progress: Progress | None = None,
                        cancelled: Callable[[], bool] | None = None,
                        found: Callable[[list[str]], None] | None = None,
                        suggested: Callable[[DefenseResult], None] | None = None
                        ) -> DefenseResult:
        """A greedy defense of at most ``budget`` neurons more than ``start`` (the neurons
        already deleted, which every mask holds), its baselines and the Pareto front of ASR
        against clean accuracy over every mask measured (see ``defense.suggest_defense``)."""
        return suggest_defense(self.session, budget, candidates, graph or self.graph,
                               start=start, mode=mode, random_draws=random_draws, seed=seed,
                               search_images=search_images, shortlist=shortlist,
                               progress=progress,
                               cancelled=cancelled, found=found, suggested=suggested)

    def curves(self, graph: Graph | None = None, ks: Sequence[int] | str | None = None,
               rankings: Sequence[str] | str | None = None, *, draws: int = 10, seed: int = 0,
               adaptive: bool = False, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None) -> Curves:
        """Deletion curves (``curves.deletion_curves``; ``massif evaluate``): for each ranking
        (MASSIF's emphasized neurons by vulnerability and by importance change, activation
        change, gradient × activation, Summit's votes, random), the ASR at ε_max and the clean
        accuracy after deleting its top ``k`` neurons, ``k`` in ``ks`` (default 1, 2, 4, …, 32,
        capped at what each ranking holds) and all emphasized, with the areas under the curves
        against ``k`` and against the clean-accuracy cost. ``graph``: the analysis's graph
        (default the one given when built)::

            curves = editor.curves(graph, ks=[1, 2, 4])
            print(curves.table()); curves.save("runs/sneaker-sandal")
        """
        graph = graph or self.graph
        if graph is None:
            raise MassifError("give the analysis's graph (Editor.from_graph, or graph=)")
        return deletion_curves(self.session, graph, ks, rankings, draws=draws, seed=seed,
                               adaptive=adaptive, progress=progress, cancelled=cancelled)

    def export(self, neurons: Sequence[str] | str, path: str | Path | io.BytesIO,
               mode: Mode = "zero") -> Path | io.BytesIO:
        """Write the edited model to ``path`` (atomically) as one ``torch.save`` dict::

            {"format": "massif-edited-model", "version": 1,
             "state_dict": {...},          # the model's weights (unchanged by the edit)
             "mask": ["mixed4a:12", ...],  # the deleted neurons
             "mode": "zero" | "mean",
             "values": {"mixed4a": tensor[C], ...},  # fill per channel (mode "mean" only)
             "layers": {"mixed4a": "mixed4a", ...},  # layer name → module path
             "layouts": {"features.1": "channels_last"},  # only layers whose units are not
                                                          # on axis 1 (docs/models.md)
             "model": "bundled", "fingerprint": "..."}

        It loads with ``torch.load(path, weights_only=True)``; ``apply_mask`` turns it (and an
        ``nn.Module`` of the same architecture) into the edited model. The fields besides the
        tensors are ``schemas.ExportHeader``.
        """
        m = self.parse(neurons, mode)
        return export_edited(path, self.net, m.channels, self.session.fills(m), self.paths,
                             mode, self.model.name, self.model.fingerprint, self.model.units)
