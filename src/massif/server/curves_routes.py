"""Deletion curves over HTTP (``massif evaluate`` for the page; docs/evaluate.md).

* ``GET /graphs/{key}/curves.json`` → ``edit.Curves``: the curves saved beside the analysis
  (by ``massif evaluate`` or an earlier job), 404 while there are none;
* ``POST /graphs/{key}/curves`` ``CurvesBody`` → ``CurvesStatus`` (202): computed as a job on a
  fork of the analysis's editor, and saved beside the analysis (``curves.json``, ``.svg``,
  ``.png``) when done; ``{}`` finds the saved curves when there are some (a job done at once)
  and computes every ranking at the default sizes otherwise, so the page asks only this; ``GET
  /curves/{id}.json`` the job's progress and result; ``POST /curves/{id}/cancel`` ``{}`` stops
  it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..edit.curves import Curves, check_curves
from ..errors import MassifError
from .answers import CurvesBody, CurvesStatus
from .edit_jobs import EditJob, EditJobs, Hooks, add_job_routes
from .site import Site


def add_curves_routes(app: Any, site: Site, use: Callable[..., Any], jobs: EditJobs) -> None:
    """``use(key, preview, fn)``: run ``fn`` with the analysis's editor (``edit_routes``)."""
    from fastapi import HTTPException

    def saved_path(key: str) -> Any:
        site.graph_entry(key)  # 404 or 409 first
        return site.ws.graph_path(key).parent / "curves.json"

    def status(job: EditJob) -> CurvesStatus:
        state, progress, error, result, _ = jobs.snapshot(job)
        return CurvesStatus(id=job.id, key=job.key, state=state, progress=progress,
                            error=error, result=result)

    def saved(key: str) -> Curves | None:
        """The curves saved beside analysis ``key``; ``None`` when there are none; 409 when
        they cannot be read."""
        path = saved_path(key)
        if not path.is_file():
            return None
        try:
            return Curves.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            raise HTTPException(409, f"the deletion curves of analysis {key} cannot be read; "
                                     "compute them again (massif evaluate, or POST "
                                     f"/graphs/{key}/curves with options)") from None

    @app.get("/graphs/{key}/curves.json", response_model=Curves)
    def saved_curves(key: str) -> Curves:
        curves = saved(key)
        if curves is None:
            raise HTTPException(404, f"no deletion curves for analysis {key} yet (POST "
                                     f"/graphs/{key}/curves, or massif evaluate)")
        return curves

    @app.post("/graphs/{key}/curves", response_model=CurvesStatus, status_code=202)
    def start_curves(key: str, body: CurvesBody) -> CurvesStatus:
        graph, _ = site.graph_entry(key)
        if not body.model_fields_set:  # the saved curves; unreadable ones are computed anew
            try:
                found = saved(key)
            except HTTPException:
                found = None
            if found is not None:
                return status(jobs.found(key, "curves", found))
        folder = site.ws.graph_path(key).parent

        def fork(editor: Any) -> Any:  # bad rankings or sizes: 422, before the job
            check_curves(editor.session.resolved, graph, body.ks, body.rankings, body.draws, 0)
            return editor.fork()

        def work(editor: Any, hooks: Hooks) -> Curves:
            curves = editor.curves(graph, ks=body.ks, rankings=body.rankings, draws=body.draws,
                                   progress=hooks.progress, cancelled=hooks.cancelled)
            try:
                curves.save(folder)
            except MassifError:  # (a read-only workspace: the page still gets them)
                pass
            return curves

        job = jobs.start(key, "curves", lambda: use(key, False, fork), work)
        if job is None:
            raise HTTPException(429, f"{jobs.RUNNING} long jobs are running already; cancel "
                                     "one or wait for it")
        return status(job)

    add_job_routes(app, jobs, "curves", "curves", "deletion curves job", status, CurvesStatus)
