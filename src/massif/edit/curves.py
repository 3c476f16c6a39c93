"""Deletion curves: delete the top ``k`` neurons of a ranking and watch the attack and the class.

``deletion_curves(session, graph, ...)`` (also ``Editor.curves``, ``massif evaluate``):

1. **Scores** (``neuron_scores``), one pass over the benign class through the unedited model,
   on the clean images ``x`` and the stored attack at ``ε_max`` (``x_K``), for every neuron of
   every analysed layer (canonical views ``[B, units, *positions]``):

   * ``activation-change``: ``mean_x mean_positions |a(x_K) − a(x)|`` (the "latent
     vulnerability" of the pruning literature, e.g. Madaan et al., ICML 2020);
   * ``gradient-x-activation``: ``mean_x Σ_positions a(x_K) · ∂z_t/∂a(x_K)`` (attribution
     toward the target logit on the attacked images, without MASSIF's clamp at 0);
   * ``votes`` (Summit, Hohman et al. 2019): the share of attacked images whose top ``N`` of the
     layer by ``s`` (each unit's maximum over positions; ``N`` the graph's nodes per layer)
     holds the neuron, less the same share on the clean images: the votes the attack moves.

2. **Rankings** (largest first; ties: layer order, then channel):

   * ``vulnerability``: the graph's emphasized neurons, most vulnerable first (ties: the larger
     ``I^t(K)``), the order the defense's ``top_emphasized`` baseline uses (MASSIF);
   * ``importance-change``: the graph's emphasized neurons by ``I^t(K) − I^t(0)`` (MASSIF);
   * ``activation-change``, ``gradient-x-activation``, ``votes``: every neuron of the analysed
     layers by its score (step 1);
   * ``random``: ``draws`` seeded permutations of the neurons of the layers that hold emphasized
     neurons (all analysed layers when none does); size ``k`` deletes a draw's first ``k``, so
     the sizes of one draw are nested.

   A prefix never deletes a whole layer: a neuron that would be the last left of its layer is
   skipped.

3. **Points**: for each ranking and each ``k`` it reaches (the asked ``ks``, capped at the
   ranking's length, and ``k = n_emphasized``: "all emphasized"), the top ``k`` are deleted
   (set to 0) and, on the benign class's images: the clean accuracy (share classified ``b``);
   the ASR at ``ε_max`` of the stored attack (the transfer attack, among the images the edited
   model classifies ``b``, as ``massif edit`` counts it); the target margin ``z_t − z_b`` on
   the attacked images (mean over all of them: it does not vanish with the class, see
   ``schemas.Faithfulness``); on the target class's clean images (capped like the class), their
   clean accuracy (a mask that deletes the target's own neurons "stops" the attack too, at a
   cost the benign class does not show); with ``adaptive``, the ASR of a fresh attack through
   the edited model. ``k = 0`` is the unedited model. Random points are means over the draws,
   with their population standard deviation.

4. **Areas** (lower is better: the attack falls sooner):

   * ``auc_k``: the mean ASR over ``0 ≤ k ≤ k_common`` on a ``log2(1 + k)`` axis (trapezoids),
     ``k_common`` the largest ``k`` every measured ranking reaches, so the areas compare;
   * ``auc_cost``: the mean, over every budget ``c`` from 0 to ``c_max``, of the lowest ASR
     that a prefix costing at most ``c`` reaches (a staircase). A prefix's **cost** is the
     larger of the two classes' clean-accuracy losses, ``max(a_b(0) − a_b(k), a_t(0) − a_t(k))``
     (benign ``b``, target ``t``), and ``c_max = max(a_b(0), a_t(0))``, the most it can be:
     an ASR bought by deleting the benign class (whose images then count for no ASR) or the
     target class (a mask that deletes the target's own neurons "stops" a targeted attack too)
     counts only at that price. On the default pair Summit's votes reach ASR 0 at 16 neurons
     with every Sneaker still right, by deleting the Sandals. ``None`` when ``c_max`` is 0.

   Random's areas are the means over the draws (``auc_*_std``: their spread).

Masks run from the session's cached cut (``cache.py``), ordered so that it moves toward the
input at most once per layer; the target images' prefix is kept per cut. Cost: the scores pass
(two forward passes and one backward pass over the class), then per mask two forward passes of
the layers after the cut over the class and one over the target images (a fresh attack adds a
forward and backward pass and a forward pass per mask).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import ConfigDict, Field

from ..attacks import attack_label
from ..errors import MassifError
from ..hooks import frozen, mask, record
from ..request import Resolved
from ..schemas import Graph, Strict
from .defense import emphasized_order
from .session import Cancelled, Mask, Progress, Session

RANKINGS = ("vulnerability", "importance-change", "activation-change", "gradient-x-activation",
            "votes", "random")
DESCRIPTIONS = {
    "vulnerability": "the graph's emphasized neurons, most vulnerable first (MASSIF)",
    "importance-change": "the graph's emphasized neurons by importance change toward the "
                         "target, I^t(K) − I^t(0) (MASSIF)",
    "activation-change": "every neuron by its mean activation change |a(x_K) − a(x)|",
    "gradient-x-activation": "every neuron by gradient × activation toward the target logit "
                             "on the attacked images",
    "votes": "every neuron by the change in Summit's votes (top N of the layer per image), "
             "attacked minus clean",
    "random": "random neurons of the layers holding emphasized ones",
}
DEFAULT_KS = (1, 2, 4, 8, 16, 32)
MAX_DRAWS = 1000


class _Finite(Strict):
    model_config = ConfigDict(allow_inf_nan=False)


class CurvePoint(_Finite):
    """One mask size ``k`` of a ranking (``k = 0``: the unedited model); random: means over the
    draws, with ``*_std`` their spread and ``draws`` the masks."""

    k: int = Field(ge=0)
    neurons: list[str] = Field(default_factory=list, description="the deleted neurons")
    asr: float = Field(ge=0, le=1, description="transfer ASR at ε_max among the images the "
                       "edited model classifies as the benign class")
    clean_accuracy: float = Field(ge=0, le=1, description="the benign class's, after deleting")
    target_accuracy: float = Field(ge=0, le=1, description="the target class's, after deleting")
    margin: float = Field(description="mean z_t − z_b on the class's images attacked at ε_max")
    cost: float = Field(0.0, ge=0, le=1, description="the larger of the benign and the target "
                        "classes' clean-accuracy losses from k = 0")
    n_correct: float = Field(ge=0, description="images classified benign when clean (the ASR's "
                             "denominator)")
    adaptive_asr: float | None = Field(None, ge=0, le=1,
                                       description="a fresh attack through the edited model")
    asr_std: float | None = None
    clean_accuracy_std: float | None = None
    target_accuracy_std: float | None = None
    margin_std: float | None = None
    adaptive_asr_std: float | None = None
    draws: list[list[str]] | None = Field(None, description="random: each draw's mask")


class Curve(_Finite):
    """One ranking's curve: its points by ``k`` (0 first) and its areas (module docstring)."""

    ranking: str
    description: str
    order: list[str] = Field(description="the ranking's neurons, first deleted first (random: "
                             "empty)")
    points: list[CurvePoint]
    auc_k: float | None
    auc_cost: float | None
    auc_k_std: float | None = None
    auc_cost_std: float | None = None


class Curves(_Finite):
    """``curves.json``: deletion curves of one analysis (``massif evaluate``; docs/evaluate.md)."""

    format: Literal["massif-curves"] = "massif-curves"
    version: Literal[1] = 1
    model: str
    dataset: str
    benign: str
    target: str
    attack: str
    targeted: bool
    epsilon: float = Field(description="ε_max, the strength every ASR is measured at")
    n_images: int
    n_target_images: int
    n_emphasized: int
    ks: list[int] = Field(description="the sizes asked for (each ranking stops at its length)")
    k_common: int = Field(description="the largest k every curve reaches: auc_k's range")
    random_draws: int
    seed: int
    adaptive: bool
    notes: list[str] = Field(default_factory=list)
    curves: list[Curve]
    seconds: float

    def curve(self, ranking: str) -> Curve:
        for c in self.curves:
            if c.ranking == ranking:
                return c
        raise KeyError(ranking)

    def table(self) -> str:
        """The points of every curve, one row per ranking and size, and the areas."""
        pct = lambda v: f"{100 * v:5.1f}%"  # noqa: E731
        kind = "targeted" if self.targeted else "untargeted"
        lines = [
            f"{self.benign} → {self.target} · {self.attack} {kind} at ε = {self.epsilon:g} · "
            f"{self.n_images} images, {self.n_target_images} of {self.target} · "
            f"{self.n_emphasized} emphasized neurons · random: {self.random_draws} draws",
            "",
            f"{'ranking':<22}{'k':>4}  {'ASR':>6}  {'clean ' + self.benign[:10]:>17}  "
            f"{'clean ' + self.target[:10]:>17}  {'margin':>7}"
            + ("  adaptive" if self.adaptive else ""),
        ]
        for c in self.curves:
            for p in c.points:
                spread = f" ±{100 * p.asr_std:4.1f}" if p.asr_std is not None else ""
                row = (f"{c.ranking if p.k == 0 else '':<22}{p.k:>4}  {pct(p.asr)}"
                       f"{spread:<6}  {pct(p.clean_accuracy):>11}  {pct(p.target_accuracy):>17}"
                       f"  {p.margin:7.2f}")
                if self.adaptive:
                    row += f"  {pct(p.adaptive_asr) if p.adaptive_asr is not None else '—':>8}"
                lines.append(row.rstrip())
        lines += ["", f"areas (mean ASR; lower: the attack falls sooner): against k up to "
                  f"{self.k_common} (log scale), and against the cost (the larger clean-accuracy "
                  f"loss of {self.benign} and {self.target})",
                  f"{'ranking':<22}{'AUC(k)':>14}  {'AUC(cost)':>14}"]
        for c in self.curves:
            lines.append(f"{c.ranking:<22}{_area(c.auc_k, c.auc_k_std):>14}  "
                         f"{_area(c.auc_cost, c.auc_cost_std):>14}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)

    def svg(self) -> str:
        """The two charts (ASR against k, ASR against clean-accuracy cost) as an SVG document."""
        from .plot import curves_svg

        return curves_svg(self)

    def png(self) -> bytes:
        """The same charts as a PNG image (drawn with Pillow)."""
        from .plot import curves_png

        return curves_png(self)

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``curves.json``, ``curves.svg`` and ``curves.png`` into ``folder`` (each
        atomically, all made before the first is written); their paths."""
        from ..files import as_path, make_dir, write_atomic

        where = make_dir(as_path(folder, "the curves' folder"), "the curves' folder")
        files = {"curves.json": self.model_dump_json(indent=2), "curves.svg": self.svg(),
                 "curves.png": self.png()}
        out: list[Path] = []
        try:
            for name, data in files.items():
                try:
                    out.append(write_atomic(where / name, data))
                except OSError as e:
                    raise MassifError(f"cannot write {where / name}: {e.strerror or e}") \
                        from None
        except BaseException:
            for path in out:  # all three or none
                path.unlink(missing_ok=True)
            raise
        return out


def _area(value: float | None, std: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" + (f" ±{std:.3f}" if std is not None else "")


# ---------------------------------------------------------------------- checks


def check_rankings(rankings: Sequence[str] | str | None) -> list[str]:
    """The rankings asked for, checked (default: all); one ``MassifError`` line else."""
    if rankings is None:
        return list(RANKINGS)
    if isinstance(rankings, str):
        rankings = rankings.split(",")
    names = [str(r).strip() for r in rankings]
    if not names or any(not n for n in names):
        raise MassifError(f"the rankings are empty; name some of {', '.join(RANKINGS)}")
    for n in names:
        if n not in RANKINGS:
            from ..errors import did_you_mean

            raise did_you_mean(n[:40], list(RANKINGS), "ranking")
    return list(dict.fromkeys(names))


def check_ks(ks: Sequence[int] | str | None) -> tuple[list[int], bool]:
    """The sizes asked for, sorted, and whether they were given (a given ``k`` beyond the layers
    is an error; the default ones are capped)."""
    if ks is None:
        return list(DEFAULT_KS), False
    if isinstance(ks, str):
        try:
            ks = [int(s) for s in ks.split(",") if s.strip()]
        except ValueError:
            raise MassifError(f"the sizes k must be whole numbers, comma-separated, not "
                              f"{ks[:40]!r}") from None
    values = list(ks)
    if not values:
        raise MassifError("no sizes k given; e.g. 1,2,4,8")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise MassifError(f"each size k must be a whole number ≥ 1, not {str(k)[:20]}")
    return sorted(set(values)), True


def check_curves(resolved: Resolved, graph: Graph, ks: Sequence[int] | str | None,
                 rankings: Sequence[str] | str | None, draws: int = 10, seed: int = 0
                 ) -> tuple[list[str], list[int], bool]:
    """Everything ``deletion_curves`` refuses, checked before any work (the CLI calls it
    before the editor attacks the class): the rankings, the sizes, the draws and the seed, the
    graph against the model's layers, the classes' images. The rankings, sizes, and whether the
    sizes were given."""
    names = check_rankings(rankings)
    sizes, given = check_ks(ks)
    if isinstance(draws, bool) or not isinstance(draws, int) or not 10 <= draws <= MAX_DRAWS:
        raise MassifError(f"draws must be 10 to {MAX_DRAWS} (random masks per size), not "
                          f"{str(draws)[:20]}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MassifError(f"the seed must be a whole number, not {str(seed)[:20]}")
    if not isinstance(graph, Graph):
        raise MassifError("give the analysis's graph (massif.Graph.load(path))")
    channels = resolved.model.layer_channels
    if graph.layers != list(channels):
        raise MassifError(f"the graph's layers ({', '.join(graph.layers)[:200]}) are not the "
                          f"model's ({', '.join(channels)[:200]})")
    if not resolved.indices:
        raise MassifError("the run has no images of the benign class")
    if not resolved.target_indices:
        raise MassifError(f"the dataset has no images of the target class "
                          f"{resolved.class_names[resolved.target]!r}: the curves measure what "
                          "each deletion costs it too")
    room = sum(c - 1 for c in channels.values())
    if given and sizes[-1] > room:
        raise MassifError(f"k = {sizes[-1]} is more than the {room} neurons the analysed layers "
                          "can lose (all but one per layer)")
    return names, sizes, given


# ---------------------------------------------------------------------- scores


def neuron_scores(session: Session, top_n: int | dict[str, int],
                  progress: Progress | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Step 1 of the module docstring: ``{score: {layer: [units] float64}}``. ``top_n``:
    the votes per image and layer (one count, or one per layer as the graph took them)."""
    ses = session
    net, n, bs = ses.net, len(ses.images), ses.batch_size
    k_max = len(ses.strengths) - 1
    names = list(ses.paths)
    zeros = {lay: torch.zeros(ses.layer_channels[lay], dtype=torch.float64) for lay in names}
    out = {s: {lay: t.clone() for lay, t in zeros.items()}
           for s in ("activation-change", "gradient-x-activation", "votes")}

    def votes(a: torch.Tensor, lay: str) -> torch.Tensor:
        s = ses.units[lay].summary(a) if lay in ses.units else a.flatten(2).amax(2)
        k = top_n[lay] if isinstance(top_n, dict) else top_n
        top = s.topk(min(k, s.shape[1]), dim=1).indices
        return torch.zeros_like(s).scatter_(1, top, 1.0).double().sum(0).cpu()

    with frozen(net), record(net, ses.paths, units=ses.units) as acts:
        for s in range(0, n, bs):
            e = min(s + bs, n)
            with torch.no_grad():
                net(ses.images[s:e])
                clean = {lay: acts[lay].detach() for lay in names}
            xa = ses.stored(k_max, s, e).detach().requires_grad_(True)
            logits = net(xa)
            recorded = [acts[lay] for lay in names]
            grads = torch.autograd.grad(logits[:, ses.target].sum(), recorded)
            for lay, a, g in zip(names, recorded, grads):
                a = a.detach()
                out["gradient-x-activation"][lay] += (a * g).flatten(2).sum(2).double().sum(0).cpu()
                out["activation-change"][lay] += (
                    (a - clean[lay]).abs().flatten(2).mean(2).double().sum(0).cpu())
                out["votes"][lay] += votes(a, lay) - votes(clean[lay], lay)
            acts.clear()
            del logits, recorded, grads, clean
            if progress:
                progress("scores", e, n)
    for group in out.values():
        for lay in group:
            group[lay] /= max(n, 1)
    return out


def _order(scores: dict[str, torch.Tensor], layers: list[str]) -> list[str]:
    """Every neuron, largest score first (ties: layer order, then channel)."""
    items = [(-float(v), li, c) for li, lay in enumerate(layers)
             for c, v in enumerate(scores[lay].tolist())]
    items.sort()
    return [f"{layers[li]}:{c}" for _, li, c in items]


def _keep_one_per_layer(order: list[str], layer_channels: dict[str, int]) -> list[str]:
    """``order`` without the neurons that would delete the last one left of their layer."""
    taken: dict[str, int] = {}
    out = []
    for nid in order:
        lay = nid.rpartition(":")[0]
        if taken.get(lay, 0) + 1 >= layer_channels[lay]:
            continue
        taken[lay] = taken.get(lay, 0) + 1
        out.append(nid)
    return out


# ---------------------------------------------------------------------- measuring


class _Measurer:
    """Measures masks on the class and the target images (step 3), from the session's cut."""

    def __init__(self, session: Session, target_images: torch.Tensor, adaptive: bool) -> None:
        self.ses, self.target_images, self.adaptive = session, target_images, adaptive
        self.k_max = len(session.strengths) - 1
        self._prefix: dict[str, list[torch.Tensor]] = {}  # cut path → target images' prefix

    def __call__(self, ids: list[str]) -> dict[str, float]:
        ses, k = self.ses, self.k_max
        m = ses.parse(ids) if ids else Mask({})
        paths = ses.module_paths(m)
        cached = ses.cut_for(set(paths))
        run = cached.cut.suffix if cached else ses.net
        net, bs, n = ses.net, ses.batch_size, len(ses.images)
        b, t = ses.benign, ses.target
        correct = hits = target_right = 0
        margin = 0.0
        with frozen(net), mask(net, paths, None, ses.path_units), torch.inference_mode():
            for s in range(0, n, bs):
                e = min(s + bs, n)
                clean = run(*([u[s:e] for u in cached.x] if cached else [ses.images[s:e]]))
                adv = run(*([u[k - 1][s:e] for u in cached.adv] if cached
                            else [ses.stored(k, s, e)]))
                ok = clean.argmax(1) == b
                correct += int(ok.sum())
                hits += int((ses.hit(adv.argmax(1)) & ok).sum())
                margin += float((adv[:, t] - adv[:, b]).double().sum())
            timg = self.target_images
            if len(timg):
                parts = self._target_inputs(cached)
                for s in range(0, len(timg), bs):
                    inp = [u[s : s + bs] for u in parts] if parts else [timg[s : s + bs]]
                    target_right += int((run(*inp).argmax(1) == t).sum())
        out = {"asr": hits / correct if correct else 0.0, "clean_accuracy": correct / max(n, 1),
               "target_accuracy": target_right / max(len(self.target_images), 1),
               "margin": margin / max(n, 1), "n_correct": float(correct)}
        if self.adaptive:
            fresh = ses.measure(m, transfer=False, ks=[k], n_sample=0)
            out["adaptive_asr"] = fresh.rates(fresh.adaptive)[0]
        return out

    def _target_inputs(self, cached: object) -> list[torch.Tensor] | None:
        if cached is None:
            return None
        c = cached.cut  # type: ignore[attr-defined]
        if c.path not in self._prefix:
            self._prefix.clear()  # one cut at a time, as the session's cache
            bs = self.ses.batch_size
            with torch.inference_mode():
                chunks = [c.prefix(self.target_images[s : s + bs])
                          for s in range(0, len(self.target_images), bs)]
            self._prefix[c.path] = [torch.cat([p[i] for p in chunks])
                                    for i in range(len(chunks[0]))]
        return self._prefix[c.path]


def _earliest(session: Session, ids: list[str]) -> int:
    """The position of the earliest layer ``ids`` touch (the number of layers for none): masks
    run latest first."""
    order = list(session.paths)
    return min((order.index(nid.rpartition(":")[0]) for nid in ids), default=len(order))


# ---------------------------------------------------------------------- areas


def area_k(points: Sequence[tuple[int, float]], k_common: int) -> float | None:
    """The mean of the ASR over ``0 ≤ k ≤ k_common`` on a ``log2(1 + k)`` axis (trapezoids;
    ``points``: ``(k, asr)`` sorted by ``k``, ``k = 0`` first)."""
    pts = [(math.log2(1 + k), a) for k, a in points if k <= k_common]
    if k_common < 1 or len(pts) < 2:
        return None
    total = sum((x1 - x0) * (a0 + a1) / 2 for (x0, a0), (x1, a1) in zip(pts, pts[1:]))
    return total / pts[-1][0]


def cost_of(point: dict[str, float], base: dict[str, float]) -> float:
    """A mask's cost: the larger of the two classes' clean-accuracy losses (0 or more)."""
    return max(0.0, base["clean_accuracy"] - point["clean_accuracy"],
               base["target_accuracy"] - point["target_accuracy"])


def cost_range(base: dict[str, float]) -> float:
    """``c_max``: the most a mask can cost (module docstring, step 4)."""
    return max(base["clean_accuracy"], base["target_accuracy"])


def area_cost(points: Sequence[tuple[float, float]], c_max: float) -> float | None:
    """The mean over budgets ``c ∈ [0, c_max]`` of the lowest ASR among the points costing at
    most ``c`` (``points``: ``(cost, asr)``, the unedited one, cost 0, first)."""
    if c_max <= 0:
        return None
    steps = sorted((min(max(c, 0.0), c_max), a) for c, a in points)
    best, last_c, total = steps[0][1], 0.0, 0.0
    for c, a in steps:
        total += (c - last_c) * best
        best, last_c = min(best, a), c
    total += (c_max - last_c) * best
    return total / c_max


def _std(values: list[float]) -> float:
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


# ---------------------------------------------------------------------- the curves


def deletion_curves(session: Session, graph: Graph, ks: Sequence[int] | str | None = None,
                    rankings: Sequence[str] | str | None = None, *, draws: int = 10,
                    seed: int = 0, adaptive: bool = False,
                    progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> Curves:
    """Deletion curves of ``graph``'s analysis (module docstring). ``ks``: the sizes (default
    1, 2, 4, …, 32, each capped at what a ranking holds; a given ``k`` beyond what the analysed
    layers hold is an error); ``rankings``: names from ``RANKINGS`` (default all); ``draws``:
    random draws (at least 10 when random is asked for); ``adaptive``: add a fresh attack's
    ASR (slower); ``cancelled()`` is asked before each mask, and ``Cancelled`` raised when it
    answers true. Bad input is one ``MassifError`` line, before any work."""
    t0 = time.perf_counter()
    ses = session
    resolved = ses.resolved
    names, sizes, _ = check_curves(resolved, graph, ks, rankings, draws, seed)
    layers = list(ses.paths)
    emphasized = _keep_one_per_layer(emphasized_order(graph), ses.layer_channels)
    n_emph = len(emphasized)
    notes: list[str] = []
    orders: dict[str, list[str]] = {}
    if n_emph == 0 and {"vulnerability", "importance-change"} & set(names):
        notes.append("the graph has no emphasized neurons: the vulnerability and "
                     "importance-change rankings are empty")
    if "vulnerability" in names:
        orders["vulnerability"] = emphasized
    if "importance-change" in names:
        nodes = {n.id: n for n in graph.nodes if n.group == "emphasized"}
        change = sorted(nodes, key=lambda i: (-(nodes[i].importance_target[-1]
                                                - nodes[i].importance_target[0]),
                                              layers.index(nodes[i].layer), nodes[i].channel))
        orders["importance-change"] = _keep_one_per_layer(change, ses.layer_channels)
    scored = [r for r in names if r in ("activation-change", "gradient-x-activation", "votes")]
    if scored:
        top_n = {lay: graph.params.nodes_for(lay) for lay in layers}
        scores = neuron_scores(ses, top_n, progress)
        for r in scored:
            orders[r] = _keep_one_per_layer(_order(scores[r], layers), ses.layer_channels)
    random_orders: list[list[str]] = []
    if "random" in names:
        pool_layers = [lay for lay in layers
                       if any(nid.rpartition(":")[0] == lay for nid in emphasized)] or layers
        pool = [f"{lay}:{c}" for lay in pool_layers for c in range(ses.layer_channels[lay])]
        rng = random.Random(seed)
        for _ in range(draws):
            random_orders.append(_keep_one_per_layer(rng.sample(pool, len(pool)),
                                                     ses.layer_channels))
        notes.append(f"random: {draws} draws from {', '.join(pool_layers)} (seed {seed})")

    def sizes_for(length: int) -> list[int]:
        return sorted({k for k in sizes if k <= length} | ({n_emph} if 0 < n_emph <= length
                                                           else set()))

    plan: dict[str, list[int]] = {r: sizes_for(len(o)) for r, o in orders.items()}
    if random_orders:
        plan["random"] = sizes_for(len(random_orders[0]))
    k_common = min((ks_[-1] for ks_ in plan.values() if ks_), default=0)
    # every mask once, latest earliest layer first (the cut moves toward the input only)
    masks: dict[tuple[str, ...], list[str]] = {(): []}
    for r, ks_ in plan.items():
        for k in ks_:
            for o in (random_orders if r == "random" else [orders[r]]):
                masks[tuple(o[:k])] = list(o[:k])
    target_images = resolved.dataset.load(resolved.target_indices).to(ses.device)
    measure = _Measurer(ses, target_images, adaptive)
    results: dict[tuple[str, ...], dict[str, float]] = {}
    todo = sorted(masks, key=lambda key: -_earliest(ses, list(key)))
    for i, key in enumerate(todo):
        if cancelled is not None and cancelled():
            raise Cancelled("deletion curves cancelled")
        results[key] = measure(masks[key])
        if progress:
            progress("curves", i + 1, len(todo))
    base = results[()]
    curves = []
    for r in names:
        if r == "random":
            curves.append(_random_curve(random_orders, plan.get("random", []), results, base,
                                        k_common))
            continue
        o = orders.get(r, [])
        pts = [_point(0, [], base, base)] + [_point(k, o[:k], results[tuple(o[:k])], base)
                                             for k in plan.get(r, [])]
        curves.append(Curve(ranking=r, description=DESCRIPTIONS[r], order=o, points=pts,
                            auc_k=area_k([(p.k, p.asr) for p in pts], k_common),
                            auc_cost=area_cost([(p.cost, p.asr) for p in pts],
                                               cost_range(base))))
    return Curves(
        model=ses.model.name, dataset=ses.dataset.name, benign=ses.class_names[ses.benign],
        target=ses.class_names[ses.target], attack=attack_label(ses.attack),
        targeted=ses.attack.targeted, epsilon=ses.strengths[-1], n_images=len(ses.images),
        n_target_images=len(target_images), n_emphasized=n_emph, ks=sizes, k_common=k_common,
        random_draws=draws if random_orders else 0, seed=seed, adaptive=adaptive, notes=notes,
        curves=curves, seconds=time.perf_counter() - t0)


def _point(k: int, ids: list[str], r: dict[str, float], base: dict[str, float]) -> CurvePoint:
    return CurvePoint(k=k, neurons=ids, cost=cost_of(r, base), **r)


def _random_curve(orders: list[list[str]], ks: list[int], results: dict, base: dict,
                  k_common: int) -> Curve:
    fields = ("asr", "clean_accuracy", "target_accuracy", "margin", "n_correct",
              "adaptive_asr")
    pts = [_point(0, [], base, base)]
    per_draw = [[(0, base["asr"], 0.0)] for _ in orders]
    for k in ks:
        rows = [results[tuple(o[:k])] for o in orders]
        mean = {f: sum(r[f] for r in rows) / len(rows) for f in fields if f in rows[0]}
        spread = {f"{f}_std": _std([r[f] for r in rows]) for f in
                  ("asr", "clean_accuracy", "target_accuracy", "margin", "adaptive_asr")
                  if f in rows[0]}
        costs = [cost_of(r, base) for r in rows]
        pts.append(CurvePoint(k=k, **mean, **spread, cost=sum(costs) / len(costs),
                              draws=[o[:k] for o in orders]))
        for d, (r, c) in enumerate(zip(rows, costs)):
            per_draw[d].append((k, r["asr"], c))
    auc_k = [area_k([(k, a) for k, a, _ in d], k_common) for d in per_draw]
    auc_c = [area_cost([(c, a) for _, a, c in d], cost_range(base)) for d in per_draw]

    def summary(values: list[float | None]) -> tuple[float | None, float | None]:
        vals = [v for v in values if v is not None]
        return (sum(vals) / len(vals), _std(vals)) if vals else (None, None)

    (ak, ak_s), (ac, ac_s) = summary(auc_k), summary(auc_c)
    return Curve(ranking="random", description=DESCRIPTIONS["random"], order=[], points=pts,
                 auc_k=ak, auc_cost=ac, auc_k_std=ak_s, auc_cost_std=ac_s)

