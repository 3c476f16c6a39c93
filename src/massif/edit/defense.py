"""Suggest a defense: delete, greedily, the neurons that stop the attack at the least cost.

``suggest_defense(editor, budget, ...)`` (also ``Editor.suggest_defense``):

1. **Candidates**: the given neuron ids, else the graph's nodes (all three groups), less the
   ``start`` neurons. **Start**: the neurons already deleted (the page passes its current
   deletions; empty by default): every mask below holds them, and the search adds to them.
2. **Search set**, for speed: the first ``search_images`` benign images and the first as many
   images of the all-class sample (a stratified prefix, see ``datasets.sample_indices``);
   ``search_images=None`` searches on everything.
3. Start from the mask ``M = start`` (empty by default), with ``a(M)`` the adaptive ASR at
   ``ε_max`` (a fresh attack through the edited model) and ``c(M)`` the clean accuracy on the
   sample, both on the search set.
4. Each step, every candidate ``n`` not in ``M`` (skipping one that would delete a whole layer)
   is scored by the ASR drop per unit of accuracy lost,
   ``(a(M) − a(M ∪ {n})) / max(cost, COST_FLOOR)``, where ``cost`` is the larger of the two
   clean-accuracy losses, on the sample (``c``) and on the benign class (``c_b``; without it,
   a neuron that makes the model miss the benign class altogether would "stop" the attack,
   since the ASR counts only correctly classified images). A drop that costs no accuracy (or
   gains some) counts as costing ``COST_FLOOR`` (half a point), so it wins over a dearer one of
   the same size.

   * **Shortlist** (``shortlist``, default 8): when more candidates are left, one pass
     (``estimate.estimate_deletions``: forward and backward over the clean search images,
     their attacked versions and the search sample) estimates, to first order, the three
     numbers with each candidate deleted too; the ``shortlist`` best candidates by that
     estimated score (ties: the larger estimated drop, then the first) are then measured
     exactly. ``shortlist=None`` measures every candidate exactly (the plain greedy search).
     ``a(M)`` and the rest are the last pick's measured numbers (at the start, those of the
     empty mask, counted by the first estimate, or measured when there is none).
   * Add the best by the exactly measured score (ties: the larger drop, then the first
     candidate). Stop at ``budget`` neurons, when the ASR on the search set is 0, or when no
     measured candidate lowers it (``stopped`` says why; the path is then shorter than the
     budget).

   On the default pair (bundled model, Sneaker → Sandal, 73 candidates) a shortlist of 8 picks
   the same neurons as the plain search, about six times sooner.
5. Re-measure every prefix of the path on all images and the whole sample: these are the
   reported numbers (the search's own are kept as ``search_adaptive_asr`` etc.; size 0 is the
   session's own unedited measurement). ``suggested(result)`` gets the result at this point,
   before its baselines (``complete`` false), so a page can show the suggestion at once.
6. **Baselines** of the same sizes (each holding the ``start`` neurons too), measured like
   step 5:
   * ``random``: for each of ``random_draws`` draws, as many random neurons *per layer* as the
     greedy path has in that layer at that size, drawn from the layer's channels outside the
     greedy path (docs/method.md's faithfulness check uses the same rule); draws are nested (size
     ``n + 1`` extends size ``n``); the mean over draws is reported, and every draw;
   * ``top_emphasized``: the graph's emphasized neurons, most vulnerable first (ties: the larger
     importance toward the target at ``ε_max``), the first ``n`` (none without a graph).
7. **The trade-off**: the Pareto front of the adaptive ASR against the clean accuracy on all
   classes over every mask measured on all images (the unedited model, the start, each prefix
   of the greedy path, each top-emphasized prefix and each random draw): the masks that no
   other beats on both, that is, none has an ASR as low and an accuracy as high, one of them
   strictly (``pareto_front``). Each point keeps the benign class's clean accuracy beside it,
   which the front does not weigh: a mask that takes the benign class with it reads ASR 0 and
   can sit on the front (docs/method.md, *Faithfulness*). The suggestion before its baselines
   carries the front of what is measured by then.

Cost: a step costs the estimate (forward and backward passes over the search images, their
attacked versions and the search sample) and, for each shortlisted candidate, a forward and
backward pass over the search images, one attacked forward pass and one over the sample; PGD
multiplies the attack part by its steps. Masks are measured many at a time
(``Session.measure_many``: one block of rows per mask in each batch), which on a small model on
a GPU runs several times faster than one at a time. Measuring a mask on all images costs about
as much as four search candidates, so on the CPU the baselines (``random_draws + 1`` masks per
size) are most of the time.

Built on the session's public measuring API only; ``cancelled()`` is asked between batches.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..attacks import attack_label
from ..errors import MassifError
from ..schemas import Graph
from .estimate import estimate_deletions
from .masks import mask_ids, parse_mask
from .session import Cancelled, Mask, Mode, Progress, Session

COST_FLOOR = 0.005


class DefensePoint(BaseModel):
    """One mask: its size, neurons, adaptive ASR at ε_max, clean accuracy on the all-class
    sample (``clean_accuracy``) and on the benign class."""

    model_config = ConfigDict(extra="forbid")

    size: int
    mask: list[str]
    adaptive_asr: float
    clean_accuracy: float
    clean_accuracy_benign: float


class FrontPoint(DefensePoint):
    """A mask on the Pareto front, and where it comes from."""

    source: Literal["unedited", "start", "greedy", "top emphasized", "random"]


class DefenseStep(DefensePoint):
    """A step of the greedy path: the neuron it added and what the search measured."""

    added: str
    score: float
    search_adaptive_asr: float
    search_clean_accuracy: float


class RandomPoint(BaseModel):
    """The random baseline at one size: means over the draws, and each draw."""

    model_config = ConfigDict(extra="forbid")

    size: int
    adaptive_asr: float
    clean_accuracy: float
    clean_accuracy_benign: float
    adaptive_asr_draws: list[float]
    clean_accuracy_draws: list[float]
    clean_accuracy_benign_draws: list[float] = Field(default_factory=list)
    masks: list[list[str]]


class DefenseResult(BaseModel):
    """A suggested defense (``greedy``), its baselines and the Pareto front of all the masks
    measured (``front``), all at ``ε_max`` (``epsilon``). ``start``: the neurons every mask
    holds (those already deleted; empty when the search started from the unedited model) and
    ``from_start`` their numbers; a point's ``size`` counts them."""

    model_config = ConfigDict(extra="forbid")

    budget: int
    mode: str
    attack: str
    epsilon: float
    n_images: int
    n_sample: int
    n_search_images: int
    n_search_sample: int
    n_candidates: int
    shortlist: int | None = None
    cost_floor: float
    random_draws: int
    before: DefensePoint
    greedy: list[DefenseStep]
    random: list[RandomPoint]
    top_emphasized: list[DefensePoint]
    start: list[str] = Field(default_factory=list)
    from_start: DefensePoint | None = None
    front: list[FrontPoint] = Field(default_factory=list)
    stopped: str | None
    complete: bool = True  # false while the baselines are still being measured
    seconds: float

    def table(self) -> str:
        """The three curves side by side, one row per size: each ASR beside the clean accuracy
        on all classes and on the benign class after the same deletion (an ASR reads 0 when the
        deletion takes the benign class with it)."""
        pct = lambda v: f"{100 * v:5.1f}%"  # noqa: E731
        triple = lambda p: (f"{pct(p.adaptive_asr)} {pct(p.clean_accuracy)} "  # noqa: E731
                            f"{pct(p.clean_accuracy_benign)}")
        blank = f"{'—':>6} {'—':>6} {'—':>6}"
        sub = f"{'ASR':>6} {'all':>6} {'benign':>6}"
        start = (f"started from the neurons already deleted ({','.join(self.start)}): every "
                 "mask holds them"
                 if self.start else "started from the unedited model")
        lines = [
            f"suggested defense against {self.attack} at ε = {self.epsilon:g} "
            f"({self.n_images} images, clean accuracy on {self.n_sample} of all classes and on "
            f"the benign class; searched on {self.n_search_images} and "
            f"{self.n_search_sample}; {self.n_candidates} candidates, "
            f"{'all' if self.shortlist is None else self.shortlist} measured per step; mode "
            f"{self.mode}); {start}",
            f"{'':>4}  {'greedy':<20}  {'random':<20}  top emphasized",
            f"{'size':>4}  {sub}  {sub}  {sub}  added",
            f"{0:>4}  {triple(self.before)}  {triple(self.before)}  {triple(self.before)}",
        ]
        if self.from_start is not None:
            first = triple(self.from_start)
            lines.append(f"{self.from_start.size:>4}  {first}  {first}  {first}  (the start)")
        for i, step in enumerate(self.greedy):
            rnd = triple(self.random[i]) if i < len(self.random) else blank
            emp = triple(self.top_emphasized[i]) if i < len(self.top_emphasized) else blank
            lines.append(f"{step.size:>4}  {triple(step)}  {rnd}  {emp}  {step.added}")
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        if not self.complete:
            lines.append("(the baselines are not measured yet)")
        if self.front:
            lines.append("Pareto front (no other mask measured has an ASR as low and a clean "
                         "accuracy on all classes as high):")
            gone = self.before.clean_accuracy_benign / 2
            for p in self.front:
                note = "  (takes the benign class with it)" \
                    if p.clean_accuracy_benign < gone else ""
                lines.append(f"  {p.source:<14} {p.size:>3} deleted  {triple(p)}  "
                             f"{','.join(p.mask) or '—'}{note}")
        lines.append(f"greedy mask: {','.join(self.greedy[-1].mask) if self.greedy else '—'}"
                     f"  ({self.seconds:.1f} s)")
        return "\n".join(lines)


def pareto_front(points: Sequence[FrontPoint]) -> list[FrontPoint]:
    """The points no other beats on both counts (none has an adaptive ASR as low and a clean
    accuracy as high, one of them strictly), from the highest clean accuracy down; of equal
    points, the first."""
    order = sorted(range(len(points)),
                   key=lambda i: (-points[i].clean_accuracy, points[i].adaptive_asr, i))
    front: list[FrontPoint] = []
    for i in order:
        if not front or points[i].adaptive_asr < front[-1].adaptive_asr:
            front.append(points[i])
    return front


def front_of(result: DefenseResult) -> list[FrontPoint]:
    """``pareto_front`` over every mask ``result`` holds (step 7)."""
    def point(p: DefensePoint, source: str) -> FrontPoint:
        return FrontPoint(size=p.size, mask=list(p.mask), adaptive_asr=p.adaptive_asr,
                          clean_accuracy=p.clean_accuracy,
                          clean_accuracy_benign=p.clean_accuracy_benign, source=source)

    points = [point(result.before, "unedited")]
    if result.from_start is not None:
        points.append(point(result.from_start, "start"))
    points += [point(p, "greedy") for p in result.greedy]
    points += [point(p, "top emphasized") for p in result.top_emphasized]
    for r in result.random:
        for mask, a, c, cb in zip(r.masks, r.adaptive_asr_draws, r.clean_accuracy_draws,
                                  r.clean_accuracy_benign_draws):
            points.append(FrontPoint(size=len(mask), mask=list(mask), adaptive_asr=a,
                                     clean_accuracy=c, clean_accuracy_benign=cb,
                                     source="random"))
    return pareto_front(points)


def emphasized_order(graph: Graph) -> list[str]:
    """The graph's emphasized neurons, most vulnerable first (ties: larger ``I^t(K)``)."""
    nodes = [n for n in graph.nodes if n.group == "emphasized"]
    nodes.sort(key=lambda n: (-(n.vulnerability or 0.0), -n.importance_target[-1], n.id))
    return [n.id for n in nodes]


MAX_BUDGET = 64
SHORTLIST = 8


def score_of(drop: float, loss: float, benign_loss: float) -> float:
    """The ASR drop per unit of clean accuracy lost (module docstring, step 4)."""
    return drop / max(loss, benign_loss, COST_FLOOR)


def suggest_defense(session: Session, budget: int, candidates: Sequence[str] | None = None,
                    graph: Graph | None = None, *, start: Sequence[str] | str | None = None,
                    mode: Mode = "zero", random_draws: int = 5,
                    seed: int = 0, search_images: int | None = 256,
                    shortlist: int | None = SHORTLIST, progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None,
                    found: Callable[[list[str]], None] | None = None,
                    suggested: Callable[[DefenseResult], None] | None = None) -> DefenseResult:
    """The greedy defense of at most ``budget`` neurons, its baselines and the Pareto front
    (module docstring). ``start``: neurons already deleted, which every mask holds and the
    search adds to (bad ids, or all of a layer, raise a ``MassifError``). ``found(path)`` is
    called with the greedy picks so far (the start left out) each time the search adds one,
    and ``suggested(result)`` with the result before its baselines (``complete`` false)."""
    t0 = time.perf_counter()
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise MassifError(f"the defense budget must be 1 to {MAX_BUDGET} neurons, not "
                          f"{str(budget)[:20]}")
    if not isinstance(random_draws, int) or not 1 <= random_draws <= 100:
        raise MassifError("random_draws must be 1 to 100")
    if search_images is not None and (not isinstance(search_images, int) or search_images < 1):
        raise MassifError("search_images must be at least 1 (or None for all images)")
    if shortlist is not None and (isinstance(shortlist, bool) or not isinstance(shortlist, int)
                                  or shortlist < 1):
        raise MassifError("shortlist must be at least 1 (or None to measure every candidate)")
    if mode not in ("zero", "mean"):
        raise MassifError(f"unknown mask mode {str(mode)[:20]!r}; choose zero or mean")
    first: list[str] = []  # the start mask
    if start is not None and (isinstance(start, str) and start.strip() or
                              not isinstance(start, str) and len(start)):
        try:
            first = mask_ids(parse_mask(start, session.layer_channels, list(session.paths)))
        except MassifError as e:
            raise MassifError(f"the defense's start (the neurons already deleted): {e}") \
                from None
    if candidates is None:
        if graph is None:
            raise MassifError("give candidate neurons or a graph whose nodes are the candidates")
        candidates = [n.id for n in graph.nodes]
    elif isinstance(candidates, str):  # one comma-separated string, as masks take them
        candidates = [c for c in candidates.split(",") if c.strip()]
    pool: list[str] = []
    for cand in candidates:  # bad ids raise; a lone channel of a 1-channel layer is skipped
        channels = parse_mask([cand], session.layer_channels, list(session.paths),
                              whole_layer_ok=True)
        pool += [nid for nid in mask_ids(channels)
                 if nid not in first and not session.deletes_whole_layer(first + [nid])]
    pool = list(dict.fromkeys(pool))
    if not pool:
        raise MassifError("no candidate neurons to choose from; give some (layer:channel)"
                          + (" not in the start" if first else ""))
    n_img, n_smp = len(session.images), len(session.sample_images)
    s_img = min(search_images or n_img, n_img)
    s_smp = min(search_images or n_smp, n_smp)
    emphasized = emphasized_order(graph) if graph is not None else []
    # progress in units of one candidate measured on the search set (the estimate costs about
    # two; a mask measured on everything, ``weight``)
    per_step = min(len(pool), shortlist) if shortlist is not None else len(pool)
    weight = max(1, round((n_img + n_smp) / max(1, s_img + s_smp)))
    total = budget * (2 + per_step) + weight * (budget * (2 + random_draws) + bool(first))
    done = 0

    def points(masks: list[list[str]], n_images: int | None,
               n_sample: int | None) -> list[tuple[float, float, float]]:
        """Adaptive ASR at ε_max, clean accuracy on the sample and on the benign class."""
        parsed = [session.parse(ids, mode) if ids else Mask({}, mode) for ids in masks]
        out = []
        step = 8 if session.device.type == "cpu" else 32  # a GPU batch holds many masks
        for start in range(0, len(parsed), step):  # progress between slices
            # An existing cut serves the sample; building one (a pass over every image at
            # every strength) cost more than it saved here (default pair: 8.6 s against 7.0 s
            # to the suggestion, medians of 3).
            part = session.measure_many(parsed[start : start + step], n_images=n_images,
                                        n_sample=n_sample, cancelled=cancelled, new_cut=False)
            out += [(c.rates(c.adaptive)[0], c.sample_accuracy, c.accuracy) for c in part]
            advance(len(part) * (weight if n_images is None else 1))
        return out

    def advance(units: int) -> None:
        nonlocal done
        done += units
        if progress:
            progress("defense", min(done, total), total)

    path: list[str] = []
    searched: list[tuple[str, float, float, float]] = []
    stopped = None
    # a(M), c(M), c_b(M): measured like the candidates (the previous step's pick, and at the
    # start the empty mask; with a shortlist the first estimate counts them)
    base: tuple[float, float, float] | None = None
    if shortlist is None:
        (base,) = points([first], s_img, s_smp)
    while len(path) < budget:
        if cancelled is not None and cancelled():
            raise Cancelled()
        tried = [c for c in pool
                 if c not in path and not session.deletes_whole_layer(first + path + [c])]
        cut_short = shortlist is not None and len(tried) > shortlist
        est = None
        if cut_short or base is None:
            est = estimate_deletions(session, session.parse(first + path, mode)
                                     if first + path else Mask({}, mode), s_img, s_smp)
            advance(2)
        if base is None:
            assert est is not None
            base = (est.asr, est.accuracy, est.benign_accuracy)
        asr, acc, acc_b = base
        if asr <= 0.0:
            stopped = "the attack no longer succeeds at ε_max on the search images"
            break
        if not tried:
            stopped = "no candidate neurons left"
            break
        if cut_short:
            assert est is not None and shortlist is not None
            guess = {}
            for cand in tried:
                lay, _, ch = cand.rpartition(":")
                a, c, cb = est.predict(lay, int(ch))
                guess[cand] = (score_of(est.asr - a, est.accuracy - c, est.benign_accuracy - cb),
                               est.asr - a)
            tried = sorted(tried, key=lambda c: (-guess[c][0], -guess[c][1],
                                                 pool.index(c)))[:shortlist]
        total += len(tried) - per_step  # a short pool or a short last list
        best: tuple | None = None
        for cand, (a, c, cb) in zip(tried, points([first + path + [c] for c in tried], s_img,
                                                  s_smp)):
            drop = asr - a
            score = score_of(drop, acc - c, acc_b - cb)
            key = (score, drop, -pool.index(cand), cand, a, c, cb)
            if best is None or key[:3] > best[:3]:
                best = key
        assert best is not None
        if best[1] <= 0.0:
            stopped = (f"none of the {len(tried)} most promising candidates lowers the "
                       "adaptive ASR" if cut_short else
                       "no remaining candidate lowers the adaptive ASR")
            break
        score, _, _, cand, asr, acc, acc_b = best
        base = (asr, acc, acc_b)
        path.append(cand)
        searched.append((cand, score, asr, acc))
        if found:
            found(list(path))
        if asr <= 0.0 and len(path) < budget:  # measured exactly: no estimate needed to stop
            stopped = "the attack no longer succeeds at ε_max on the search images"
            break

    # step 5: the path measured on all images (the unedited numbers are the session's own)
    before = session.before
    k_max = len(session.strengths) - 2
    result = DefenseResult(
        budget=budget, mode=mode, attack=attack_label(session.attack),
        epsilon=session.strengths[-1], n_images=n_img, n_sample=n_smp, n_search_images=s_img,
        n_search_sample=s_smp, n_candidates=len(pool), shortlist=shortlist,
        cost_floor=COST_FLOOR, random_draws=random_draws,
        before=DefensePoint(size=0, mask=[], adaptive_asr=before.rates(before.transfer)[k_max],
                            clean_accuracy=before.sample_accuracy,
                            clean_accuracy_benign=before.accuracy),
        greedy=[], random=[], top_emphasized=[], start=first, stopped=stopped, complete=False,
        seconds=0.0)
    greedy_masks = [first + path[: i + 1] for i in range(len(searched))]
    measured = points(([first] if first else []) + greedy_masks, None, None)
    if first:
        a, c, cb = measured.pop(0)
        result.from_start = DefensePoint(size=len(first), mask=first, adaptive_asr=a,
                                         clean_accuracy=c, clean_accuracy_benign=cb)
    for i, ((cand, score, s_asr, s_acc), (a, c, cb)) in enumerate(zip(searched, measured)):
        result.greedy.append(DefenseStep(
            size=len(first) + i + 1, mask=greedy_masks[i], adaptive_asr=a, clean_accuracy=c,
            clean_accuracy_benign=cb, added=cand, score=score, search_adaptive_asr=s_asr,
            search_clean_accuracy=s_acc))
    result.front = front_of(result)
    result.seconds = time.perf_counter() - t0
    if suggested:
        suggested(result.model_copy(deep=True))

    # step 6: the baselines, measured likewise
    rng = random.Random(seed)
    in_path: dict[str, set[int]] = {}
    for nid in first + path:
        lay, _, ch = nid.rpartition(":")
        in_path.setdefault(lay, set()).add(int(ch))
    orders = []
    for _ in range(random_draws):
        orders.append({lay: rng.sample([c for c in range(session.layer_channels[lay])
                                        if c not in used],
                                       session.layer_channels[lay] - len(used))
                       for lay, used in in_path.items()})
    random_masks: list[list[list[str]]] = []
    for size in range(1, len(path) + 1):
        counts: dict[str, int] = {}
        for nid in path[:size]:
            lay = nid.rpartition(":")[0]
            counts[lay] = counts.get(lay, 0) + 1
        random_masks.append([first + ids for ids in (
            [f"{lay}:{c}" for lay, n in counts.items() for c in order[lay][:n]]
            for order in orders) if ids])
    top_masks = []
    emphasized = [nid for nid in emphasized if nid not in first]
    for size in range(1, min(len(path), len(emphasized)) + 1):
        if session.deletes_whole_layer(first + emphasized[:size]):
            break
        top_masks.append(first + emphasized[:size])
    measured = iter(points([m for ms in random_masks for m in ms] + top_masks, None, None))
    for size, masks in enumerate(random_masks, start=1):
        vals = [next(measured) for _ in masks]
        if masks:
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            asrs, accs, accs_b = ([v[i] for v in vals] for i in range(3))
            result.random.append(RandomPoint(
                size=len(first) + size, adaptive_asr=mean(asrs), clean_accuracy=mean(accs),
                clean_accuracy_benign=mean(accs_b), adaptive_asr_draws=asrs,
                clean_accuracy_draws=accs, clean_accuracy_benign_draws=accs_b, masks=masks))
    for ids in top_masks:
        a, c, cb = next(measured)
        result.top_emphasized.append(DefensePoint(
            size=len(ids), mask=ids, adaptive_asr=a, clean_accuracy=c, clean_accuracy_benign=cb))
    if progress:
        progress("defense", total, total)
    result.front = front_of(result)
    result.complete = True
    result.seconds = time.perf_counter() - t0
    return result
