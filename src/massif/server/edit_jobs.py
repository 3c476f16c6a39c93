"""Long jobs on a saved analysis's editor (``EditJobs``): each runs on its own thread, on a fork
of the analysis's editor (its own model copy), so quick edits of the same analysis go on
meanwhile; progress, a partial result, and cancel, like analyses (``jobs.py``). Defense searches
(``defense_jobs``) and deletion curves (``curves_routes``) run here, sharing one limit; what a
job computes is the function it is given."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import SERVER_MEMORY_ADVICE, MassifError, out_of_memory
from ..memory import release_cached
from .answers import EmptyBody, State
from .jobs import JobState

log = logging.getLogger("massif.server")


@dataclass(kw_only=True)
class EditJob(JobState):
    """One long job on an editor: ``kind`` says what (``curves``), ``result`` what it found
    (a partial one while it runs, when the work says so)."""

    id: int
    key: str
    kind: str
    result: Any = None
    details: dict[str, Any] = field(default_factory=dict)  # what the kind adds to its status


@dataclass
class Hooks:
    """What a job's work reports through: ``progress(stage, done, total)``, ``cancelled()``
    (asked between steps), ``partial(result)`` (kept if the job is cancelled later),
    ``note(**details)`` (what its status adds, such as a search's picks so far)."""

    progress: Callable[[str, int, int], None]
    cancelled: Callable[[], bool]
    partial: Callable[[Any], None]
    note: Callable[..., None]


class EditJobs:
    """Long jobs on forks of editors; at most ``RUNNING`` at once (more is a 429: the
    machine's cores are shared) and ``KEEP`` finished ones are remembered. ``clean`` is what a
    job's error goes through before anyone reads it (the site's: no server path in it)."""

    KEEP = 32
    RUNNING = 2

    def __init__(self, clean: Callable[[str], str] = lambda message: message) -> None:
        self.clean = clean
        self.jobs: dict[int, EditJob] = {}
        self._lock = threading.Lock()
        self._next_id = 1

    def start(self, key: str, kind: str, fork: Callable[[], Any],
              work: Callable[[Any, Hooks], Any],
              details: dict[str, Any] | None = None) -> EditJob | None:
        """Run ``work(editor, hooks)`` in the background on the editor ``fork()`` makes (a copy
        this job owns); ``None`` when ``RUNNING`` jobs are queued or running already.
        ``details``: what the job's status adds (``note`` updates them).

        The job takes its place before the (slow) fork, under the same lock as the count, so
        requests that arrive together cannot all pass the limit. A failed fork gives it back."""
        with self._lock:
            if sum(not j.finished.is_set() for j in self.jobs.values()) >= self.RUNNING:
                return None
            job = EditJob(id=self._next_id, key=key, kind=kind, details=dict(details or {}))
            self._next_id += 1
            self.jobs[job.id] = job
            self._forget_old()
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

        def partial(result: Any) -> None:
            with self._lock:
                job.result = result

        def note(**details: Any) -> None:
            with self._lock:
                job.details.update(details)

        def run() -> None:
            from ..edit.session import Cancelled

            with self._lock:
                job.state = "running"
            try:
                result = work(editor, Hooks(progress, job.cancel.is_set, partial, note))
                state, error = "done", None
            except Cancelled:  # a partial result found before the stop is kept
                result, state, error = job.result, "cancelled", None
            except MassifError as e:
                result, state, error = None, "error", str(e)
            except Exception as e:  # a bug (or no memory left): one line in the log, the page
                result, state, error = None, "error", out_of_memory(e, SERVER_MEMORY_ADVICE)
                if error is None:
                    log.error("%s job %s failed: %s: %s", kind, job.id, type(e).__name__, e,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    error = f"{type(e).__name__}: {str(e)[:200]}"
            if error is not None and error.startswith("out of "):
                release_cached()  # after the except: its traceback held the tensors
            with self._lock:
                job.state, job.error, job.result = state, error, result
                job.progress = 1.0 if state == "done" else job.progress
            job.finished.set()

        threading.Thread(target=run, name=f"massif-{kind}-{job.id}", daemon=True).start()
        return job

    def found(self, key: str, kind: str, result: Any) -> EditJob:
        """A job that ended before it began: ``result`` was found saved."""
        with self._lock:
            job = EditJob(id=self._next_id, key=key, kind=kind, result=result, state="done",
                          progress=1.0)
            job.finished.set()
            self._next_id += 1
            self.jobs[job.id] = job
            self._forget_old()
        return job

    def _forget_old(self) -> None:
        """Keep the ``KEEP`` latest finished jobs (the lock held)."""
        finished = [j for j in self.jobs.values() if j.finished.is_set()]
        for old in finished[: max(0, len(finished) - self.KEEP)]:
            del self.jobs[old.id]

    def get(self, job_id: int, kind: str) -> EditJob | None:
        with self._lock:
            job = self.jobs.get(job_id)
        return job if job is not None and job.kind == kind else None

    def snapshot(self, job: EditJob) -> tuple[State, float, str | None, Any, dict[str, Any]]:
        """The job's state, progress, error (cleaned), result and details, read together."""
        with self._lock:
            state, progress, error, result = job.state, job.progress, job.error, job.result
            details = dict(job.details)
        return state, progress, None if error is None else self.clean(error), result, details


def add_job_routes(app: Any, jobs: EditJobs, kind: str, prefix: str, noun: str,
                   status: Callable[[EditJob], Any], model: type) -> Callable[[int], EditJob]:
    """``GET /{prefix}/{id}.json`` (the job's ``status``, a ``model``) and ``POST
    /{prefix}/{id}/cancel`` ``{}`` (stops it at its next step; an ended one is a 409 saying
    there is nothing to cancel) for the jobs of ``kind``, called ``noun`` in messages (a 404
    names it). Returns the lookup (id → job, or the 404)."""
    from fastapi import HTTPException

    from ..errors import short

    def job_of(job_id: int) -> EditJob:
        job = jobs.get(job_id, kind) if 0 < job_id < 10**9 else None
        if job is None:
            raise HTTPException(404, f"no {noun} {short(job_id, 20)}")
        return job

    def read(job_id: int) -> Any:
        return status(job_of(job_id))

    def cancel(job_id: int, _body: EmptyBody) -> Any:
        job = job_of(job_id)
        if job.finished.is_set():  # nothing runs: a plain 409, not a cancel that did nothing
            raise HTTPException(409, f"{noun} {job_id} has ended already "
                                     f"({jobs.snapshot(job)[0]}); there is nothing to cancel")
        job.cancel.set()
        return status(job)

    app.get(f"/{prefix}/{{job_id}}.json", response_model=model, name=f"{kind}_status")(read)
    app.post(f"/{prefix}/{{job_id}}/cancel", response_model=model, name=f"{kind}_cancel")(cancel)
    return job_of
