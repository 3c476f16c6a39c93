"""Analyses over HTTP: the page, what it can ask for, and analyses started on demand.

* ``GET /`` (``?benign=&target=&attack=…``): the page; ``GET /index.json``: the model, its
  classes, the attacks, the default request and the saved analyses;
* ``POST /analyses`` ``PairChoice`` → ``AnalysisStatus``: start an analysis, or find it saved
  or running; ``GET /analyses.json?benign=…&target=…`` the same without starting it;
* ``GET /analyses/{key}.json``: its status and progress; ``POST /analyses/{key}/cancel`` ``{}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..errors import MassifError, short
from ..schemas import first_error
from ..store import valid_key
from .answers import AnalysisStatus, AttackName, ClassInfo, EmptyBody, Info, PairChoice
from .jobs import ATTACKS, JobManager
from .site import Site


def add_analysis_routes(app: Any, site: Site, jobs: JobManager, page: bytes) -> None:
    from fastapi import HTTPException
    from fastapi.responses import Response

    engine = site.engine

    @app.get("/", include_in_schema=False)
    def index_page() -> Response:
        return Response(page, media_type="text/html")

    @app.get("/index.json", response_model=Info)
    def index_json() -> Info:
        return Info(
            model=engine.model_name, model_fingerprint=engine.model_fingerprint,
            dataset=engine.dataset_name, can_analyze=engine.why_not is None,
            why_not=engine.why_not,
            classes=[ClassInfo(index=i, name=n) for i, n in enumerate(engine.class_names)],
            attacks=list(ATTACKS), default_max_strength=dict(ATTACKS),
            default_request=engine.default_choice(), analyses=site.saved())

    @app.post("/analyses", response_model=AnalysisStatus)
    def start_analysis(choice: PairChoice) -> AnalysisStatus:
        return jobs.submit(choice)

    @app.get("/analyses.json", response_model=AnalysisStatus)
    def find_analysis(benign: str, target: str, attack: AttackName = "fgm",
                      targeted: bool = True, max_strength: float | None = None) -> AnalysisStatus:
        try:
            choice = PairChoice(benign=benign, target=target, attack=attack, targeted=targeted,
                                max_strength=max_strength)
        except ValidationError as e:
            raise MassifError(first_error(e)) from None
        return jobs.status(jobs.key_of(choice))

    @app.get("/analyses/{key}.json", response_model=AnalysisStatus)
    def analysis_status(key: str) -> AnalysisStatus:
        status = jobs.status(key) if valid_key(key) else None
        if status is None or status.state == "missing":
            raise HTTPException(404, f"no analysis {short(key, 40)} is saved or running")
        return status

    @app.post("/analyses/{key}/cancel", response_model=AnalysisStatus)
    def cancel_analysis(key: str, _body: EmptyBody) -> AnalysisStatus:
        before = jobs.status(key) if valid_key(key) else None
        if before is not None and before.state in ("done", "error", "cancelled"):
            # nothing runs: say so rather than answer as if a cancel had happened
            raise HTTPException(409, f"analysis {key} is not running (it is {before.state}); "
                                     "there is nothing to cancel")
        status = jobs.cancel(key) if valid_key(key) else None
        if status is None or status.state == "missing":
            raise HTTPException(404, f"no analysis {short(key, 40)} is saved or running")
        return status
