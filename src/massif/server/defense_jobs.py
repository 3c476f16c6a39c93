"""Defense searches for ``serve``: ``edit.Editor.suggest_defense`` as an ``EditJobs`` job (its
own thread, on a fork of the analysis's editor, so quick edits go on meanwhile; progress, the
picks found so far, the suggestion before its baselines, and cancel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .answers import DefenseStatus
from .edit_jobs import EditJob, EditJobs, Hooks


class DefenseJobs:
    """Defense searches, run by ``jobs`` (whose limit they share with the other long jobs)."""

    def __init__(self, jobs: EditJobs) -> None:
        self.jobs = jobs
        self.RUNNING = jobs.RUNNING

    def start(self, key: str, budget: int, mode: str, fork: Callable[[], Any],
              graph: Any, start: list[str] | None = None) -> EditJob | None:
        """Run ``suggest_defense`` on the editor ``fork()`` makes, from the neurons ``start``
        deleted; ``None`` when the long jobs' limit is reached."""
        start = list(start or [])

        def work(editor: Any, hooks: Hooks) -> Any:
            return editor.suggest_defense(
                budget, graph=graph, mode=mode, start=start, progress=hooks.progress,
                cancelled=hooks.cancelled, found=lambda picks: hooks.note(picks=list(picks)),
                suggested=hooks.partial)

        return self.jobs.start(key, "defense", fork, work,
                               details={"budget": budget, "mode": mode, "start": start,
                                        "picks": []})

    def get(self, job_id: int) -> EditJob | None:
        return self.jobs.get(job_id, "defense")

    def status(self, job: EditJob) -> DefenseStatus:
        state, progress, error, result, details = self.jobs.snapshot(job)
        return DefenseStatus(id=job.id, key=job.key, state=state, progress=progress,
                             error=error, result=result, **details)
