"""Many processes, GPUs and machines through ``torch.distributed``, started by ``torchrun``.

``torchrun --nproc-per-node N -m massif analyze ...`` starts N copies of the command; each
reads its rank from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and ``start`` joins the process group (nccl on CUDA, gloo on
the CPU). Without torchrun nothing changes: ``World()`` is one process of rank 0.

Who does what:

* the class's images are cut into batches of ``batch_size`` consecutive indices, the same
  batches in any world size, and the batches into **rounds** of ``N``: in each round rank ``r``
  takes batch ``r``. Every image is computed in the same batch, at the same place, as one
  process would compute it, so the per-image float32 numbers are the same bits (CPU and GPU
  kernels may round an image's numbers differently with its batch-mates or its place among
  them) and the float64 sums differ by the order of the additions alone;
* every running sum (float64, on the CPU) is added over the ranks with ``sum_to_all`` at the end
  of a pass, so every rank holds the class's sums and picks the same graph nodes;
* rank 0 alone reads and writes checkpoints (the ranks' sums added with ``sum_to_main``, and
  how many images of the index list they cover), ``graph.json`` and pictures. A checkpoint
  covers whole rounds, so a killed run resumes in any world size;
* the batch size is rank 0's (an automatic one could differ between GPUs);
* a collective that fails because another rank died becomes one ``MassifError``, and in a
  process started by torchrun SIGTERM (torchrun stopping the survivors) becomes one too: every
  rank ends with exit status 2, never a hang (``MASSIF_DIST_TIMEOUT`` seconds, default 1800,
  bound a rank that hangs without dying), and the run with one ``massif: error:`` line, said
  by the first rank that failed (``says_error``).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch

from .errors import MassifError
from .process import quiet_sigterm

_joining = False  # start() is under way: an error now is this process's own (its GPU, its peers)
_store: object = None  # the run's key-value store, where the processes agree who says an error
_says: bool | None = None  # whether this process says the run's error line, once decided


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run (``World()``: alone)."""

    rank: int = 0
    size: int = 1
    device: torch.device | None = None  # where nccl wants collective tensors (None: the CPU)

    @property
    def main(self) -> bool:
        """Rank 0: the process that reads and writes files."""
        return self.rank == 0

    def rounds(self, indices: Sequence[int], batch_size: int, start: int = 0
               ) -> Iterator[tuple[int, list[int]]]:
        """``(end, mine)`` per round after the first ``start`` indices: ``end`` is how many
        indices the rounds so far cover, ``mine`` this rank's batch of the round (maybe empty):
        the ``rank``-th run of ``batch_size`` consecutive indices. With ``start`` a multiple of
        ``batch_size`` (a checkpoint covers whole rounds), the batches are those one process
        takes, whatever the world size."""
        step = batch_size * self.size
        for lo in range(start, len(indices), step):
            end = min(lo + step, len(indices))
            first = min(lo + self.rank * batch_size, end)
            yield end, list(indices[first : min(first + batch_size, end)])

    def shard(self, items: Sequence) -> list:
        """This rank's share of ``items`` (every ``size``-th, from ``rank``)."""
        return list(items[self.rank :: self.size])

    def sum_to_all(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace every tensor by its sum over the ranks, identical on every rank."""
        if self.size == 1 or not tensors:
            return
        flat = self._flat(tensors)
        self._call(torch.distributed.all_reduce, flat)
        self._call(torch.distributed.broadcast, flat, 0)  # bitwise the same everywhere
        self._unflat(flat, tensors)

    def sum_to_main(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The tensors summed over the ranks, on rank 0 (other ranks get their own back);
        the tensors themselves are left as they are."""
        if self.size == 1:
            return list(tensors)
        flat = self._flat(tensors)
        self._call(torch.distributed.reduce, flat, 0)
        out = [t.clone() for t in tensors]
        if self.main:
            self._unflat(flat, out)
        return out

    def decide(self, value: bool) -> bool:
        """Rank 0's ``value``, on every rank (e.g. whether to save a checkpoint now)."""
        return bool(self.share(int(value)))

    def share(self, value: int) -> int:
        """Rank 0's integer, on every rank."""
        if self.size == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        t = t.to(self.device) if self.device is not None else t
        self._call(torch.distributed.broadcast, t, 0)
        return int(t.cpu()[0])

    def smallest(self, value: int) -> int:
        """The smallest of the ranks' integers, on every rank (a batch size each rank sized
        to its own GPU's free memory: the rounds need one size, and it must fit every GPU)."""
        if self.size == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        t = t.to(self.device) if self.device is not None else t
        self._call(torch.distributed.all_reduce, t, torch.distributed.ReduceOp.MIN)
        return int(t.cpu()[0])

    def share_object(self, obj: object) -> object:
        """Rank 0's picklable object, on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        self._call(torch.distributed.broadcast_object_list, box, 0, device=self.device)
        return box[0]

    def gather_objects(self, obj: object) -> list | None:
        """Every rank's object, in rank order, on rank 0 (``None`` elsewhere)."""
        if self.size == 1:
            return [obj]
        box: list | None = [None] * self.size if self.main else None
        self._call(torch.distributed.gather_object, obj, box, 0)
        return box

    def _flat(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        flat = torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in tensors])
        return flat.to(self.device) if self.device is not None else flat

    @staticmethod
    def _unflat(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
        flat = flat.cpu()
        at = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[at : at + n].view(t.shape).to(t.dtype))
            at += n

    def _call(self, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:  # DistBackendError and friends: a peer died or timed out
            raise MassifError(f"rank {self.rank}: another process of this run stopped or "
                              f"stopped answering ({str(e).splitlines()[0][:160]})") from None


def launched() -> bool:
    """True in a process that torchrun (or a script setting its variables) started."""
    return _env_int("WORLD_SIZE", 1) > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "") or str(default)
    try:
        return int(value)
    except ValueError:
        raise MassifError(f"{name} must be a whole number (torchrun sets it), not "
                          f"{value[:40]!r}") from None


def start(device: torch.device) -> World:
    """Join the process group torchrun describes, or ``World()`` without torchrun.

    ``device`` is the resolved ``--device``: CUDA uses nccl, and each process takes the GPU
    ``LOCAL_RANK``; the CPU uses gloo."""
    global _joining, _store
    if not launched():
        return World()
    import torch.distributed as dist

    _joining = True
    if "RANK" not in os.environ:
        raise MassifError("WORLD_SIZE is set but RANK is not: start the command with torchrun")
    rank, size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    cuda = device.type == "cuda"
    local = _local_gpu() if cuda else _env_int("LOCAL_RANK", 0)
    try:
        seconds = float(os.environ.get("MASSIF_DIST_TIMEOUT", "1800"))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        raise MassifError("MASSIF_DIST_TIMEOUT must be a number of seconds, not "
                          f"{os.environ['MASSIF_DIST_TIMEOUT'][:40]!r}")
    if cuda:
        torch.cuda.set_device(local)  # before nccl starts: its context on this GPU alone
    if not dist.is_initialized():
        timeout = timedelta(seconds=seconds)
        try:
            dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=size,
                                    timeout=timeout)
        except (RuntimeError, ValueError) as e:
            raise MassifError(f"rank {rank}: could not join the other processes: "
                              f"{str(e).splitlines()[0][:200]}") from None
    _stop_cleanly(rank)
    if not _agent():  # the group's store, kept: a process that fails counts itself in it
        try:  # after it has left the group (says_error)
            _store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError, ValueError):
            _store = None
    _joining = False
    if cuda:
        return World(rank, size, torch.device("cuda", local))
    return World(rank, size)


def local_device(device: torch.device) -> torch.device:
    """The device this process computes on: under torchrun with CUDA, its own GPU
    (``LOCAL_RANK``; a ``cuda:N`` given to every rank would put them all on one GPU)."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", _local_gpu())
    return device


def _local_gpu() -> int:
    """``LOCAL_RANK``, the GPU this process takes, checked against the GPUs it sees (before it
    joins the others: a rank that cannot start must not leave them waiting)."""
    local, count = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
    if not 0 <= local < count:
        raise MassifError(
            f"LOCAL_RANK is {local} but this process sees {count} GPU(s): start at most "
            f"{count} process(es) per machine (torchrun --nproc-per-node {count}); each takes "
            "the GPU its LOCAL_RANK names (a scheduler that gives each task one GPU of its own "
            "wants one process per task)")
    return local


def stop() -> None:
    """Leave the process group (if one was joined). Called while an error propagates (from a
    ``finally``), it first counts this process in the run's store (``says_error``): the other
    processes see this one leave, so they count after it, and the line says what went wrong
    first."""
    import torch.distributed as dist

    if sys.exc_info()[0] is not None:
        says_error()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def says_error() -> bool:
    """Whether this process prints the run's ``massif: error:`` line (``terminal.fail``).

    Every process that fails exits with status 2, but one line says it all: under torchrun the
    first process to fail says it, and the others (failing alike, or stopped because it
    failed) exit quietly. The first is the first to count itself in a key-value store all the
    processes reach: torchrun's own (its agent's), or, in processes started otherwise, the
    process group's once they have joined (a process counts itself before it leaves the group,
    in ``stop``, so those that see it leave count after it). Without a store (processes not
    started by torchrun, before they join) a bad option fails every process alike and the
    first process of each machine (``LOCAL_RANK`` 0) says it, and a process that fails to join
    says its own reason. Decided once per process; where the store does not answer, the
    process says its line (twice is better than never)."""
    global _says
    if _says is None:
        try:
            alone = not launched()
        except MassifError:  # a broken WORLD_SIZE: said by the process that meets it
            alone = True
        store = None if alone else _run_store()
        if alone:
            _says = True
        elif store is None:
            _says = _joining or _first_on_machine()
        else:
            key = f"massif/error/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
            try:
                store.set_timeout(timedelta(seconds=10))  # type: ignore[attr-defined]
                _says = store.add(key, 1) == 1  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 (any failure of the store: say it)
                _says = True
    return _says


def _first_on_machine() -> bool:
    """Whether this is the first process of its machine (``LOCAL_RANK`` 0; a broken value:
    yes, the process says that)."""
    try:
        return _env_int("LOCAL_RANK", 0) == 0
    except MassifError:
        return True


def _agent() -> bool:
    """Whether torchrun started this process and serves the processes a key-value store."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def _run_store() -> object:
    """The key-value store where the processes agree who says an error: torchrun's (its
    agent's, at ``MASTER_ADDR:MASTER_PORT``), which every process reaches before it joins the
    others and after it has left them, else the process group's (kept by ``start``); ``None``
    when there is none, or torchrun's cannot be reached."""
    global _store
    if _store is None and _agent():
        import torch.distributed as dist

        try:
            _store = dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                timeout=timedelta(seconds=10))
        except (KeyError, ValueError, RuntimeError, OSError):
            return None
    return _store


def _stop_cleanly(rank: int) -> None:
    """SIGTERM (torchrun stopping the ranks after one failed, or a scheduler cancelling the
    job) → an error (said once for the run, ``says_error``), exit 2."""

    def handler(_sig: int, _frame: object) -> None:
        quiet_sigterm()  # a second SIGTERM while this one unwinds ends the process quietly
        raise MassifError(f"rank {rank}: stopped by SIGTERM (torchrun stops every process when "
                          "one fails; its report says which; a scheduler may have cancelled "
                          "the job); start the same command again to resume")

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a notebook runner): keep the default
        pass
