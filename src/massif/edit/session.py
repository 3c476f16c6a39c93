"""The measuring core of the ``edit`` stage: one analysis's images, its stored attack, and a
public ``measure`` that counts clean accuracy and attack successes with neurons deleted.

A ``Session`` is built once per analysis (benign class ``b``, target ``t``, attack, strengths
``ε_0 = 0 < … < ε_K``):

1. **Its own model.** A copy of the model's module (hooks dropped), or a module the caller hands
   over (the server passes a copy of its start-up snapshot, so no request thread ever touches
   the model the analyses run on). Mask hooks go on this copy only.
2. **Images.** Over the benign class's images ``X`` (``Resolved.indices``): the attack at every
   strength (FGM/FGSM: the one raw gradient per image, from which ``x_k`` is rebuilt on demand;
   PGD: the images ``x_k`` themselves), kept as the *transfer* set; the per-channel mean
   activation of every layer over ``X`` (for ``mode="mean"``); a fixed all-class sample
   (``sample_size`` images, classes taken in turn from a seeded shuffle, so every prefix of it is
   stratified); and the unedited numbers (``before``).
3. **Measure** (``measure``), in batches of ``X`` through the edited copy: *transfer*, the
   clean images (which images the edited model classifies ``b``: the images the ASR counts),
   the stored attack at every strength and the sample, all from a cached cut before the
   earliest masked layer when one exists (``cut.py``); *adaptive*, one forward and backward
   pass on the clean images gives, for FGM/FGSM, the attack gradient through the edited
   model, hence a fresh attack at every strength (PGD runs its own attack through the copy);
   a success is ``t`` (targeted) or anything but ``b`` (untargeted).
4. **Many masks at once** (``measure_many``): the adaptive numbers and the sample's accuracy of
   several masks in one forward and backward pass, the batch made of one block of rows per
   mask (``hooks.mask_rows``). The defense search measures its candidates this way. Images
   every mask sees unchanged (the sample; for PGD also the clean images) run from the cached
   cut when it covers the masks, else through the layers before the masked ones once per batch
   and the rest once per mask (``cache.ActivationCache.split``, which keeps no activations).

Thread rule: a ``Session`` is used by one thread at a time (its copy carries the mask hooks
while it measures). ``fork()`` gives another session over the same (read-only) images with its
own model copy and cut, for a long job beside short ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..attacks import attack_direction
from ..datasets import sample_indices
from ..errors import MassifError, short
from ..hooks import frozen, mask, mask_rows, private_copy, record
from ..memory import auto_batch_size
from ..request import Resolved
from .cache import AUTO, ActivationCache, Cached
from .masks import Counts, Mask, Mode, parse_mask

Progress = Callable[[str, int, int], None]


class Session:
    """One analysis's images, stored attack and model copy; ``measure`` (module docstring).

    ``resolved``: the analysis (``AnalysisRequest.resolve()``). ``net``: a module this session
    may own and hook (default: a private copy of the model's). ``fx_graph``: the model traced
    by ``cut.trace`` (``"auto"``: trace it here, which patches torch process-wide for a moment,
    so a server passes one traced at start-up; ``None``: no cut, the whole model every time).
    ``sample_size``: the all-class sample. ``cache_mb``: memory for the cut's activations.
    """

    def __init__(self, resolved: Resolved, *, net: nn.Module | None = None,
                 fx_graph: Any = AUTO, sample_size: int = 1000, cache_mb: float = 512,
                 progress: Progress | None = None) -> None:
        if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 0:
            raise MassifError("the sample size must be a whole number ≥ 0")
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, (int, float)) \
                or not 0 <= cache_mb < 2**40:
            raise MassifError(f"cache_mb must be a number of megabytes, not {short(cache_mb)}")
        r = resolved
        self.resolved = r
        self.model, self.dataset, self.attack = r.model, r.dataset, r.attack
        self.benign, self.target, self.strengths = r.benign, r.target, list(r.strengths)
        self.class_names, self.indices = r.class_names, list(r.indices)
        self.device = r.device
        self.paths = dict(r.model.layers)  # display name → module path
        self.layer_channels = dict(r.model.layer_channels)
        self.units = dict(r.model.units)  # display name → units
        self.path_units = dict(r.model.path_units)  # module path → units
        self.net: nn.Module = (net if net is not None else private_copy(r.model.module))
        m = r.model  # the batch is sized on the private copy: the live model is not hooked
        self.batch_size = r.request.batch_size or auto_batch_size(
            self.net, (m.channels, m.image_size, m.image_size), len(self.strengths), self.device)
        self.net.to(self.device)
        self.progress = progress
        self.images = r.dataset.load(self.indices).to(self.device)
        picked = sample_indices(r.dataset, sample_size)
        self.sample_images = (r.dataset.load(picked).to(self.device) if picked
                              else self.images[:0])
        self.sample_labels = torch.tensor([r.label_map[int(r.dataset.labels[i])] for i in picked],
                                          dtype=torch.long, device=self.device)
        self._stored_attack()
        self.cache = ActivationCache(self.net, fx_graph, list(self.paths.values()),
                                     int(cache_mb * 2**20))
        size = r.model.image_size * r.model.image_size * r.model.channels
        # Rows of one batch when many masks share it. On a GPU bigger batches of small images
        # run faster; on the CPU they ran slower (measured on the bundled model, 2 cores: a
        # forward and backward pass of 1,024 rows cost more per row than of 256), so there
        # each batch holds one mask.
        self.max_rows = (self.batch_size if self.device.type == "cpu" else
                         max(self.batch_size, min(8 * self.batch_size, 2**22 // max(1, size))))
        self.before = self.measure(Mask({}), adaptive=False)

    def fork(self) -> Session:
        """Another session over the same images and stored attack (shared, read-only), with
        its own model copy and cut: a long job can run on it beside this one."""
        twin = copy.copy(self)
        twin.net = private_copy(self.net).to(self.device)
        twin.cache = self.cache.for_net(twin.net)
        return twin

    # ------------------------------------------------------------------ construction

    def _stored_attack(self) -> None:
        """The transfer set, and the benign mean activation per channel, on the unedited copy."""
        from ..analysis.profile import attacked

        net, atk, n = self.net, self.attack, len(self.images)
        eps = self.strengths[1:]
        self._dir: torch.Tensor | None = None
        self._adv: torch.Tensor | None = None
        if atk.single_gradient:
            self._dir = torch.empty_like(self.images)
        else:
            self._adv = torch.empty(len(eps), *self.images.shape, dtype=self.images.dtype,
                                    device=self.device)
        sums = {name: torch.zeros(c, dtype=torch.float64)
                for name, c in self.layer_channels.items()}
        labels_all = self.labels(n)
        shim = copy.copy(self.model)
        shim.module = self.net
        with frozen(net):
            for s in range(0, n, self.batch_size):
                x = self.images[s : s + self.batch_size]
                labels = labels_all[s : s + len(x)]
                x0 = x.detach().requires_grad_(True)
                with record(net, self.paths, units=self.units) as acts:
                    logits = net(x0)
                for name, a in acts.items():
                    sums[name] += a.detach().double().flatten(2).mean(2).sum(0).cpu()
                acts.clear()
                if atk.single_gradient:
                    self._dir[s : s + len(x)] = attack_direction(net, x0, labels, atk.targeted,
                                                                 logits=logits).detach()
                else:
                    del logits
                    self._adv[:, s : s + len(x)] = attacked(
                        shim, atk, x, labels, eps, self.batch_size).detach()
                if self.progress:
                    self.progress("edit", min(s + len(x), n), n)
        self.means = {self.paths[name]: (v / max(n, 1)).float().to(self.device)
                      for name, v in sums.items()}

    def labels(self, n: int) -> torch.Tensor:
        """The attack's labels for ``n`` images: the target (targeted) or the benign class."""
        value = self.target if self.attack.targeted else self.benign
        return torch.full((n,), value, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ masks

    def parse(self, neurons: Sequence[str] | str, mode: Mode = "zero") -> Mask:
        """Check neuron ids (``layer:channel``) and a mode; a one-line ``MassifError`` else."""
        if mode not in ("zero", "mean"):
            raise MassifError(f"unknown mask mode {str(mode)[:20]!r}; choose zero or mean")
        return Mask(parse_mask(neurons, self.layer_channels, list(self.paths)), mode)

    def deletes_whole_layer(self, ids: Sequence[str]) -> bool:
        """Whether ``ids`` (valid ids) hold every channel of some layer."""
        per: dict[str, set[str]] = {}
        for nid in ids:
            lay = nid.rpartition(":")[0]
            per.setdefault(lay, set()).add(nid)
        return any(len(v) >= self.layer_channels[lay] for lay, v in per.items())

    def fills(self, m: Mask) -> dict[str, torch.Tensor] | None:
        """Module path → ``[C]`` fill values (mode ``mean``), or ``None`` (zero)."""
        if m.mode == "zero" or not m.channels:
            return None
        return {self.paths[lay]: self.means[self.paths[lay]] for lay in m.channels}

    def module_paths(self, m: Mask) -> dict[str, list[int]]:
        return {self.paths[lay]: chans for lay, chans in m.channels.items()}

    @contextmanager
    def edited(self, m: Mask) -> Iterator[nn.Module]:
        """The session's model with ``m`` applied (eval mode, no parameter gradients) inside
        the block; hooks, mode and flags are restored on exit, even after an error."""
        with frozen(self.net), mask(self.net, self.module_paths(m), self.fills(m),
                                    self.path_units):
            yield self.net

    # ------------------------------------------------------------------ measuring

    def hit(self, pred: torch.Tensor) -> torch.Tensor:
        """Which predictions are attack successes: the target (targeted), else not benign."""
        return pred == self.target if self.attack.targeted else pred != self.benign

    def stored(self, k: int, s: int, e: int) -> torch.Tensor:
        """The transfer images at strength index ``k`` (≥ 1) of the benign images ``s:e``."""
        if self._dir is not None:
            return self.attack.from_direction(self.images[s:e], self._dir[s:e],
                                              [self.strengths[k]])[0]
        return self._adv[k - 1][s:e]  # type: ignore[index]

    def attack_images(self, net: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                      direction: torch.Tensor | None, eps: list[float]) -> torch.Tensor:
        """A fresh attack on ``x`` through ``net`` at ``eps``: ``[K, B, ...]``. FGM/FGSM
        build it from ``direction`` (``attack_direction`` through ``net``); PGD runs."""
        from ..analysis.profile import attacked

        if direction is not None:
            return self.attack.from_direction(x, direction, eps)
        shim = copy.copy(self.model)
        shim.module = net
        return attacked(shim, self.attack, x, labels, eps, self.batch_size).detach()

    def measure(self, m: Mask, *, adaptive: bool = True, transfer: bool = True,
                ks: Sequence[int] | None = None, n_images: int | None = None,
                n_sample: int | None = None, correct: torch.Tensor | None = None,
                new_cut: bool = True) -> Counts:
        """Counts through the session's model with ``m`` applied.

        ``ks``: the strength indices (≥ 1) to attack at (default all); ``n_images`` /
        ``n_sample``: only the first images of the class / of the sample (0: none);
        ``correct``: which images the edited model classifies correctly when clean, if a
        previous call measured it. Images that do not change with the mask run from the cached
        cut when one covers the mask; ``new_cut`` lets this call move the cut (one pass over
        them).
        """
        ks = list(range(1, len(self.strengths))) if ks is None else list(ks)
        eps = [self.strengths[k] for k in ks]
        out = Counts(len(ks))
        net, atk, bs = self.net, self.attack, self.batch_size
        n = min(len(self.images) if n_images is None else n_images, len(self.images))
        labels_all = self.labels(n)
        paths = self.module_paths(m)
        cached = self.cut_for(set(paths), new_cut)
        run = cached.cut.suffix if cached else net
        with frozen(net), mask(net, paths, self.fills(m), self.path_units):
            for s in range(0, n, bs):
                e = min(s + bs, n)
                x = self.images[s:e]
                ok = correct[s:e] if correct is not None else None
                direction = None
                if adaptive and atk.single_gradient and ks:
                    x0 = x.detach().requires_grad_(True)
                    logits = net(x0)
                    if ok is None:
                        ok = logits.argmax(1) == self.benign
                    direction = attack_direction(net, x0, labels_all[s:e], atk.targeted,
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
                    adv = self.attack_images(net, x, labels_all[s:e], direction, eps)
                    self._count(net, lambda j: [adv[j]], ok, out.adaptive)  # noqa: B023
                if transfer:
                    if cached:
                        self._count(run, lambda j: [t[ks[j] - 1][s:e] for t in cached.adv],
                                    ok, out.transfer)
                    else:
                        self._count(net, lambda j: [self.stored(ks[j], s, e)], ok,
                                    out.transfer)
            total = len(self.sample_images)
            mm = min(total if n_sample is None else n_sample, total)
            with torch.inference_mode():
                for s in range(0, mm, bs):
                    e = min(s + bs, mm)
                    inp = ([t[s:e] for t in cached.sample] if cached
                           else [self.sample_images[s:e]])
                    pred = run(*inp).argmax(1)
                    out.sample_correct += int((pred == self.sample_labels[s:e]).sum())
            out.n_sample = mm
        return out

    def measure_many(self, masks: Sequence[Mask], *, ks: Sequence[int] | None = None,
                     n_images: int | None = None, n_sample: int | None = None,
                     cancelled: Callable[[], bool] | None = None,
                     new_cut: bool = True) -> list[Counts]:
        """``measure(m, transfer=False)`` for every mask in ``masks``, several masks sharing
        each forward and backward pass (one block of rows per mask; see ``hooks.mask_rows``).
        ``cancelled()`` is asked between batches; when it answers true, ``Cancelled`` is
        raised. ``new_cut`` as in ``measure`` (here the cut serves the sample, and for PGD the
        clean images; see the module docstring, step 4)."""
        ks = [len(self.strengths) - 1] if ks is None else list(ks)
        eps = [self.strengths[k] for k in ks]
        bs = self.batch_size
        n = min(len(self.images) if n_images is None else n_images, len(self.images))
        total = len(self.sample_images)
        mm = min(total if n_sample is None else n_sample, total)
        per = max(1, self.max_rows // max(1, min(bs, max(n, 1))))
        results: list[Counts] = []
        layers = {self.paths[lay] for m in masks for lay in m.channels}
        cached = self.cut_for(layers, new_cut)
        for g0 in range(0, len(masks), per):
            group = list(masks[g0 : g0 + per])
            results += self._measure_group(group, ks, eps, n, mm, cached, cancelled)
        return results

    def _measure_group(self, group: list[Mask], ks: list[int], eps: list[float], n: int,
                       mm: int, cached: Cached | None,
                       cancelled: Callable[[], bool] | None) -> list[Counts]:
        g = len(group)
        outs = [Counts(len(ks)) for _ in group]
        net, atk, bs = self.net, self.attack, self.batch_size
        paths = [self.module_paths(m) for m in group]
        fills = [self.fills(m) for m in group]
        masked = {p for ps in paths for p in ps}
        run = cached.cut.suffix if cached and cached.cut.covers(masked) else None
        split = self.cache.split(masked, self.images[:8]) if run is None else None

        def shared(images: torch.Tensor, at_cut: list[torch.Tensor]) -> torch.Tensor:
            """Logits, one block of rows per mask, of images every mask sees unchanged: from
            the cached cut's activations ``at_cut``, else through the split's prefix once and
            its suffix per mask, else through the whole model per mask (module docstring).
            ``cat``, not ``repeat``: it keeps the activations' memory format (channels_last)."""
            if run is not None:
                return run(*[torch.cat([t] * g) for t in at_cut])
            if split is not None:
                return split.suffix(*[torch.cat([t] * g) for t in split.prefix(images)])
            return net(images.repeat(g, *([1] * (images.ndim - 1))))

        with frozen(net), mask_rows(net, paths, fills, self.path_units):
            for s in range(0, n, bs):
                if cancelled is not None and cancelled():
                    raise Cancelled()
                e = min(s + bs, n)
                b = e - s
                x = self.images[s:e].repeat(g, *([1] * (self.images.ndim - 1)))
                labels = self.labels(b).repeat(g)
                direction = None
                if atk.single_gradient and ks:
                    x0 = x.detach().requires_grad_(True)
                    logits = net(x0)
                    ok = logits.argmax(1) == self.benign
                    direction = attack_direction(net, x0, labels, atk.targeted,
                                                 logits=logits).detach()
                    del logits, x0
                else:
                    with torch.inference_mode():
                        at_cut = [t[s:e] for t in cached.x] if run is not None else []
                        ok = shared(self.images[s:e], at_cut).argmax(1) == self.benign
                okg = ok.view(g, b)
                for i, out in enumerate(outs):
                    out.correct.append(okg[i])
                    out.n_images += b
                    out.n_correct += int(okg[i].sum())
                if not ks or not bool(ok.any()):
                    continue
                adv = self.attack_images(net, x, labels, direction, eps)
                with torch.inference_mode():
                    for j in range(len(ks)):
                        hits = (self.hit(net(adv[j]).argmax(1)) & ok).view(g, b).sum(1)
                        for i, out in enumerate(outs):
                            out.adaptive[j] += int(hits[i])
            with torch.inference_mode():
                for s in range(0, mm, bs):
                    e = min(s + bs, mm)
                    at_cut = [t[s:e] for t in cached.sample] if run is not None else []
                    pred = shared(self.sample_images[s:e], at_cut).argmax(1)
                    right = (pred.view(g, e - s) == self.sample_labels[s:e]).sum(1)
                    for i, out in enumerate(outs):
                        out.sample_correct += int(right[i])
        for out in outs:
            out.n_sample = mm
        return outs

    def _count(self, run: Callable[..., torch.Tensor],
               inputs: Callable[[int], list[torch.Tensor]], correct: torch.Tensor,
               hits: list[int]) -> None:
        with torch.inference_mode():
            for j in range(len(hits)):
                hits[j] += int((self.hit(run(*inputs(j)).argmax(1)) & correct).sum())

    # ------------------------------------------------------------------ the cut (cache.py)

    def cut_for(self, masked: set[str], new_cut: bool = True) -> Cached | None:
        """The cached cut covering the masked layers (module paths), if any; with ``new_cut``,
        moved to the latest layer before the earliest masked one when the current one does
        not cover them (see ``cache.ActivationCache``)."""
        return self.cache.covering(masked, new_cut, self)


class Cancelled(Exception):
    """A long job was asked to stop (see ``measure_many``'s ``cancelled``)."""
