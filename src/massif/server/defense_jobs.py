"""Defense searches for ``serve`` (``DefenseJobs``): each runs on its own thread, on a fork of
the analysis's editor (its own model copy), so quick edits of the same analysis go on meanwhile;
progress, the picks found so far, and cancel, like analyses (``jobs.py``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SERVER_MEMORY_ADVICE, MassifError, out_of_memory
from ..memory import release_cached
from .jobs import JobState

log = logging.getLogger("massif.server")


class DefenseStatus(BaseModel):
    """A defense search: ``queued``, ``running`` (progress in [0, 1]), ``done`` (with its
    ``result``), ``error`` or ``cancelled``. ``result`` comes before the end: the suggestion
    with ``complete`` false while its baselines are measured (and kept if cancelled then)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    key: str
    budget: int
    mode: str
    state: Literal["queued", "running", "done", "error", "cancelled"]
    progress: float = 0.0
    error: str | None = None
    picks: list[str] = Field(default_factory=list)  # the greedy picks so far, in order
    start: list[str] = Field(default_factory=list)  # the neurons it started from, deleted
    result: Any = None  # edit.DefenseResult: the suggestion first (complete false), then all


@dataclass(kw_only=True)
class DefenseJob(JobState):
    """A defense search."""

    id: int
    key: str
    budget: int
    mode: str
    picks: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    result: Any = None


class DefenseJobs:
    """Defense searches, each on its own thread over a fork of an editor; at most ``RUNNING``
    at once (more is a 429: the machine's cores are shared) and ``KEEP`` finished ones are
    remembered."""

    KEEP = 32
    RUNNING = 2

    def __init__(self) -> None:
        self.jobs: dict[int, DefenseJob] = {}
        self._lock = threading.Lock()
        self._next_id = 1

    def start(self, key: str, budget: int, mode: str, fork: Callable[[], Any],
              graph: Any, start: list[str] | None = None) -> DefenseJob | None:
        """Run ``suggest_defense`` in the background on the editor ``fork()`` makes (a copy
        this job owns), from the neurons ``start`` deleted; ``None`` when ``RUNNING`` searches
        are queued or running already.

        The job takes its place before the (slow) fork, under the same lock as the count, so
        requests that arrive together cannot all pass the limit. A failed fork gives it back."""
        with self._lock:
            if sum(not j.finished.is_set() for j in self.jobs.values()) >= self.RUNNING:
                return None
            job = DefenseJob(id=self._next_id, key=key, budget=budget, mode=mode,
                             start=list(start or []))
            self._next_id += 1
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.finished.is_set()]
            for old in finished[: max(0, len(finished) - self.KEEP)]:
                del self.jobs[old.id]
        try:
            editor = fork()
        except BaseException:
            with self._lock:
                del self.jobs[job.id]
            job.finished.set()
            raise

        def progress(_stage: str, done: int, total: int) -> None:
            with self._lock:
                job.progress = round(done / total, 4) if total else 0.0

        def found(picks: list[str]) -> None:
            with self._lock:
                job.picks = list(picks)

        def suggested(result: Any) -> None:  # the suggestion, before its baselines
            with self._lock:
                job.result = result

        def work() -> None:
            from ..edit.session import Cancelled as Stopped

            with self._lock:
                job.state = "running"
            try:
                result = editor.suggest_defense(budget, graph=graph, mode=mode,
                                                start=job.start, progress=progress,
                                                cancelled=job.cancel.is_set, found=found,
                                                suggested=suggested)
                state, error = "done", None
            except Stopped:  # a suggestion found before the stop is kept
                result, state, error = job.result, "cancelled", None
            except MassifError as e:
                result, state, error = None, "error", str(e)
            except Exception as e:  # a bug (or no memory left): one line in the log, the page
                result, state, error = None, "error", out_of_memory(e, SERVER_MEMORY_ADVICE)
                if error is None:
                    log.error("defense search %s failed: %s: %s", job.id, type(e).__name__, e,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    error = f"{type(e).__name__}: {str(e)[:200]}"
            if error is not None and error.startswith("out of "):
                release_cached()  # after the except: its traceback held the tensors
            with self._lock:
                job.state, job.error, job.result = state, error, result
                job.progress = 1.0 if state == "done" else job.progress
            job.finished.set()

        threading.Thread(target=work, name=f"massif-defense-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> DefenseJob | None:
        with self._lock:
            return self.jobs.get(job_id)

    def status(self, job: DefenseJob) -> DefenseStatus:
        with self._lock:
            return DefenseStatus(id=job.id, key=job.key, budget=job.budget, mode=job.mode,
                                 state=job.state, progress=job.progress, error=job.error,
                                 picks=list(job.picks), start=list(job.start),
                                 result=job.result)
