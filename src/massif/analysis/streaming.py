"""Streamed float64 sums over a class's images, resumable and shared over processes.

Every pass of the analysis (``divergence.class_means``, ``profile.profile_neurons``,
``profile.profile_edges``) walks its images in rounds (``rounds``: this rank's part of each round,
the next round loading while this one computes), adds each batch into ``RunningSums``, saves them
through a ``Checkpoint`` every few seconds and adds them over the ranks at the end.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from ..datasets import Dataset
from ..distributed import World
from ..files import write_atomic

Progress = Callable[[str, int, int], None]


class Checkpoint:
    """Resumable running sums: saved atomically after the first batch, then at most every
    ``every`` seconds (default 5, ``$MASSIF_CHECKPOINT_SECONDS``).

    The file holds the sums so far, how many images they cover and a ``key`` naming everything
    that determines them; a file with another key is ignored. A killed run loses at most
    ``every`` seconds of work (plus the batch under way).
    """

    def __init__(self, path: Path | None, key: str, every: float | None = None) -> None:
        if every is None:
            every = float(os.environ.get("MASSIF_CHECKPOINT_SECONDS", "5"))
        self.path, self.key, self.every = path, key, every
        self.last = -math.inf  # the first batch is saved at once

    def load(self) -> dict | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a foreign or damaged file: start over
            return None
        return state if isinstance(state, dict) and state.get("key") == self.key else None

    def due(self) -> bool:
        """Whether ``every`` seconds have passed since the last save (or none was made)."""
        return self.path is not None and time.monotonic() - self.last >= self.every

    def save(self, state: dict, force: bool = False) -> None:
        if self.path is None or not (force or time.monotonic() - self.last >= self.every):
            return
        buf = io.BytesIO()
        torch.save({**state, "key": self.key}, buf)
        write_atomic(self.path, buf.getvalue())
        self.last = time.monotonic()

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class RunningSums:
    """The float64 sums of one pass: a vector of ``counts`` and named groups of per-layer
    tensors. Rank 0 resumes them from its ``Checkpoint`` and saves them (added over the
    ``World``, with how many indices they cover); ``finish`` adds them over the ranks."""

    def __init__(self, n_counts: int, groups: dict[str, dict[str, torch.Tensor]],
                 checkpoint: Checkpoint | None, world: World) -> None:
        self.counts = torch.zeros(n_counts, dtype=torch.float64)
        self.groups, self.checkpoint, self.world = groups, checkpoint, world
        self.tensors = [self.counts] + [t for g in groups.values() for t in g.values()]

    def resume(self) -> int:
        """Load rank 0's checkpoint, if any; how many indices it covers (on every rank)."""
        saved = self.checkpoint.load() if self.checkpoint and self.world.main else None
        covered = 0
        if saved and "covered" in saved:
            self.counts.copy_(saved["counts"])
            for name, group in self.groups.items():
                for lay, t in group.items():
                    t.copy_(saved[name][lay])
            covered = int(saved["covered"])
        return self.world.share(covered)

    def save(self, end: int, force: bool = False) -> None:
        """Save the sums over every rank when the checkpoint is due (rank 0 decides)."""
        if self.checkpoint is None or not self.world.decide(force or self.checkpoint.due()):
            return
        total = self.world.sum_to_main(self.tensors)
        if self.world.main:
            rest = iter(total[1:])
            state: dict = {"covered": end, "counts": total[0]}
            for name, group in self.groups.items():
                state[name] = {lay: next(rest) for lay in group}
            self.checkpoint.save(state, force=True)

    def finish(self) -> None:
        self.world.sum_to_all(self.tensors)


def rounds(dataset: Dataset, indices: Sequence[int], batch_size: int, device: torch.device,
           world: World, stage: str, progress: Progress | None, start: int = 0,
           workers: int = 0) -> Iterator[tuple[int, list[int], torch.Tensor | None]]:
    """``(end, mine, images)`` per round (see ``distributed.World.rounds``): how many indices
    the rounds so far cover, this rank's dataset indices of the round and their images on
    ``device`` (``None`` when it has none). The next round's images load while this one
    computes."""
    if progress:
        progress(stage, start, len(indices))
    plan = list(world.rounds(indices, batch_size, start))
    loaded = dataset.load_chunks([mine for _, mine in plan], workers)
    for (end, mine), images in zip(plan, loaded):
        yield end, mine, images.to(device, non_blocking=True) if mine else None
        if progress:
            progress(stage, end, len(indices))
