"""The activations at a cut, for the images an edit never changes (see ``cut.py``).

Deleting neurons of layer ``L`` leaves everything computed before ``L`` unchanged, so for the
clean benign images, the stored attack and the all-class sample a ``Session`` keeps the
activations at a cut before the earliest masked layer and runs only the rest of the model. One
cut is cached at a time (at most ``cache_bytes``); a mask that needs an earlier one moves it.
``split`` gives a checked cut without activations, for images many masks share in one batch
(``Session.measure_many``'s sample): the prefix runs once, the suffix once per mask.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..hooks import frozen
from .cut import Cut, check, cut, trace

AUTO = "auto"  # trace the model where it is first needed


@dataclass
class Cached:
    """The prefix's outputs (one tensor per boundary value) for the images that never change:
    the clean benign images, the transfer images (``adv[i][k - 1]``) and the sample."""

    cut: Cut
    x: list[torch.Tensor]
    adv: list[list[torch.Tensor]]
    sample: list[torch.Tensor]


class ActivationCache:
    """One cached cut of ``net`` (module paths ``paths``, input side first).

    ``fx_graph``: the model traced by ``cut.trace``, ``None`` (no cut: the whole model every
    time) or ``"auto"`` (traced here on first use, which patches torch process-wide for a
    moment; a server passes a graph traced at start-up)."""

    def __init__(self, net: nn.Module, fx_graph: Any, paths: list[str],
                 cache_bytes: int) -> None:
        self.net, self.fx_graph, self.paths, self.cache_bytes = net, fx_graph, paths, cache_bytes
        self.cached: Cached | None = None
        self._cuts: dict[str, Cut] = {}  # cuts built so far, by path (no activations)
        self._checked: set[str] = set()  # of those, the ones checked against the model
        self.bad_cuts: set[str] = set()  # paths where the model cannot be cut
        self.too_big: set[str] = set()  # paths whose activations do not fit ``cache_bytes``

    def for_net(self, net: nn.Module) -> ActivationCache:
        """An empty cache of the same kind for another copy of the model."""
        twin = ActivationCache(net, self.fx_graph, self.paths, self.cache_bytes)
        twin.bad_cuts, twin.too_big = set(self.bad_cuts), set(self.too_big)
        return twin

    def covering(self, masked: set[str], new_cut: bool, session: Any) -> Cached | None:
        """The cached cut covering ``masked`` (module paths), if any; with ``new_cut``, moved
        to the latest layer before the earliest masked one when the current one does not
        cover them. ``session`` gives the images (``images``, ``stored``, ``sample_images``)."""
        if self.cached is not None and self.cached.cut.covers(masked):
            return self.cached
        if not new_cut:
            return None
        while True:
            c = self.split(masked, session.images[:8], skip=self.too_big)
            if c is None:
                return None
            with frozen(self.net):
                built = self._fill(c, session)
            if built is not None:
                self.cached = built
                return built
            self.too_big.add(c.path)  # its activations would not fit: try an earlier cut

    def split(self, masked: set[str], probe: torch.Tensor,
              skip: Collection[str] = ()) -> Cut | None:
        """The latest cut whose suffix runs every layer in ``masked`` (none at a path in
        ``skip``), checked on ``probe`` (a few images), with no activations kept: a caller runs
        its prefix once for images that many masks share and its suffix once per mask.
        ``None`` if there is none, or if ``cache_bytes`` is 0 (no cut of any kind)."""
        if not masked or self.cache_bytes <= 0:
            return None
        if self.fx_graph == AUTO:
            with frozen(self.net):
                self.fx_graph = trace(self.net, self.paths)
        if self.fx_graph is None:
            return None
        for path in reversed(self.paths):
            if path in self.bad_cuts or path in skip:
                continue
            c = self._cuts.get(path)
            if c is None:
                c = cut(self.net, self.fx_graph, path, self.paths)
                if c is None:
                    self.bad_cuts.add(path)
                    continue
                self._cuts[path] = c
            if not c.covers(masked):
                continue
            if path not in self._checked:  # checked once, when first needed
                with frozen(self.net):
                    if not check(c, self.net, probe):
                        self.bad_cuts.add(path)
                        continue
                self._checked.add(path)
            return c
        return None

    @torch.inference_mode()
    def _fill(self, c: Cut, session: Any) -> Cached | None:
        """Run the prefix over the clean, transfer and sample images (None if too big)."""
        images, sample, bs = session.images, session.sample_images, session.batch_size
        n, k_all = len(images), len(session.strengths) - 1
        per_image = sum(t[0].numel() * t.element_size() for t in c.prefix(images[:1]))
        if per_image * (n * (k_all + 1) + len(sample)) > self.cache_bytes:
            return None
        self.cached = None  # free the old cut's tensors first

        def run(part: Callable[[int, int], torch.Tensor], total: int) -> list[torch.Tensor]:
            parts = [c.prefix(part(s, min(s + bs, total))) for s in range(0, total, bs)]
            return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]

        x = run(lambda s, e: images[s:e], n)
        adv = [run(lambda s, e, k=k: session.stored(k, s, e), n) for k in range(1, k_all + 1)]
        smp = run(lambda s, e: sample[s:e], len(sample)) if len(sample) else [t[:0] for t in x]
        # adv: per boundary tensor, [K, N, ...] as one list indexed by strength
        return Cached(c, x, [[a[i] for a in adv] for i in range(len(x))], smp)
