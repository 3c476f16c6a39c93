"""How ``World.rounds`` cuts a class's images among processes: the batches one process takes,
in any world size, so every image is computed beside the same batch-mates at the same place
(kernels may round an image's numbers differently with its batch-mates or its place among them)."""

from __future__ import annotations

import pytest

from massif.distributed import World


def batches(size: int, indices: list[int], batch: int, start: int = 0,
            rounds: int | None = None) -> list[list[int]]:
    """The ranks' batches, round by round and rank by rank (empty ones left out), of the first
    ``rounds`` rounds (all by default); every rank must agree on the rounds' ends."""
    plans = [list(World(rank, size).rounds(indices, batch, start))[:rounds]
             for rank in range(size)]
    assert len({tuple(end for end, _ in plan) for plan in plans}) == 1
    return [mine for round_ in zip(*plans) for _, mine in round_ if mine]


def one_process(indices: list[int], batch: int) -> list[list[int]]:
    return [indices[i : i + batch] for i in range(0, len(indices), batch)]


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 16, 300, 301])
def test_every_world_size_takes_the_one_process_batches(size, n):
    indices = list(range(100, 100 + n))
    assert batches(size, indices, 16) == one_process(indices, 16)


@pytest.mark.parametrize(("size", "again"), [(2, 1), (2, 3), (1, 2)])
def test_a_run_resumed_in_another_world_size_takes_the_same_batches(size, again):
    """A checkpoint covers whole rounds (``end`` of the last one saved); the rest, in any world
    size, is what one process takes from there."""
    indices = list(range(300))
    end = list(World(0, size).rounds(indices, 16))[2][0]  # killed after three rounds
    done = batches(size, indices, 16, rounds=3)
    assert done + batches(again, indices, 16, start=end) == one_process(indices, 16)
