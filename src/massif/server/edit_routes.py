"""The ``edit`` stage over HTTP: delete neurons of a saved analysis and measure the attack.

Every route here computes, so every one is a ``POST`` with a JSON body (a cross-site image or
link cannot set one off; see ``app.py``):

* ``POST /graphs/{key}/edit`` ``{"mask": ["mixed4a:12"], "mode": "zero", "adaptive": true,
  "preview": false, "checks": []}`` → ``edit.EditResult``: clean accuracy and ASR per strength
  before and after, for the stored adversarial images (transfer) and a fresh attack through the
  edited model (adaptive); ``adaptive: false`` skips the fresh attack (the slow part);
  ``preview: true`` answers on the first 250 images of the class and of the sample, without it
  (within a second); ``checks`` (``pgd-restarts``, ``apgd-ce``, ``apgd-t``: ``edit.checks``)
  adds stronger attacks that know the mask, with their ASR, robust accuracy and ``warnings``
  (an unknown name is a 422; not with ``preview``). The page asks for the preview, then without
  the fresh attack, then with it;
* ``POST /graphs/{key}/checks`` ``{"mask": [...], "mode": "zero", "checks": ["apgd-t"]}`` →
  ``answers.ChecksStatus`` (202): the same with ``checks``, as a long job (``edit_jobs``) on a
  fork of the editor, so other deletions go on; ``GET /checks/{id}.json`` its progress and its
  ``EditResult``; ``POST /checks/{id}/cancel`` ``{}`` stops it (what the page uses);
* ``POST /graphs/{key}/editor`` ``{}`` → ``EditorInfo``: build the editors now (the page asks
  as soon as it opens an analysis);
* ``POST /graphs/{key}/defense`` ``{"budget": 5, "mode": "zero", "start": ["mixed4a:12"]}`` →
  ``defense_jobs.DefenseStatus``: a defense search started as a job, from the neurons in
  ``start`` deleted (the page's deletions; a bad id is a 422 before it starts); ``GET
  /defenses/{id}.json`` its progress and its ``edit.DefenseResult`` (the suggestion first,
  ``complete`` false while the baselines are measured; its ``front``: the Pareto front of ASR
  against clean accuracy over every mask measured, and ``start``); ``POST
  /defenses/{id}/cancel`` ``{}`` stops it;
* ``POST /graphs/{key}/images`` ``{"k": 3}`` → ``one_image.Gallery``: the class's images with
  their clean and attacked predictions at strength index ``k``; ``POST
  /graphs/{key}/images/{position}`` ``{}`` → ``one_image.ImageDetail``: that image through the
  attack (the per-image view); ``GET /graphs/{key}/dataset/{index}.png``: a dataset image (the
  gallery's thumbnails);
* ``POST /graphs/{key}/edited-model.pt`` ``{"mask": [...], "mode": "zero"}`` (``MaskBody``): the
  edited model as a file (made in memory: no temporary file).

Bodies are JSON objects checked strictly (``EmptyBody`` where a route needs nothing): an unknown
field, ``"yes"`` for a boolean or ``"3"`` for a number is refused (422) naming the field.

Editors (the class's images, the stored attack and a private copy of the start-up snapshot of the
model) are built on the first request for an analysis and kept for the next ones (``KEEP``). Each
editor has its own lock: edits of one analysis run one at a time, edits of different analyses
and the preview editor run side by side, and a defense search runs on a fork of the editor, so
it never holds the lock that previews wait for.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import MassifError, short
from ..schemas import Graph
from ..threads import in_own_thread
from .answers import (
    PREVIEW_IMAGES,
    ChecksBody,
    ChecksStatus,
    DefenseBody,
    DefenseStatus,
    EditBody,
    EditorInfo,
    EmptyBody,
    GalleryBody,
    MaskBody,
)
from .edit_jobs import Hooks, add_job_routes

KEEP = 4  # editors kept in memory (a full one and a preview one per analysis)


class _Slot:
    """One editor and its lock (``editor`` is ``None`` until built)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.editor: Any = None


def add_edit_routes(app: Any, graph_entry: Callable[[str], tuple[Graph, bytes]],
                    engine: Any, defenses: Any) -> Callable[..., Any]:
    """Add the routes; returns ``use(key, preview, fn)``, which runs ``fn`` with the analysis's
    editor (for the other routes that compute on one, ``curves_routes``)."""
    from fastapi import HTTPException
    from fastapi.responses import Response

    from ..edit import DefenseResult, Editor, EditResult
    from ..edit.one_image import Gallery, ImageDetail

    slots: OrderedDict[str, _Slot] = OrderedDict()
    slots_lock = threading.Lock()  # guards ``slots`` only, never held while computing

    def slot_of(name: str) -> _Slot:
        with slots_lock:
            slot = slots.get(name)
            if slot is None:
                slot = slots[name] = _Slot()
            slots.move_to_end(name)
            while len(slots) > KEEP:  # a busy slot being evicted finishes its call unharmed
                slots.popitem(last=False)
            return slot

    def check(key: str, graph: Graph) -> None:
        if engine.base is None:
            raise MassifError(engine.why_not)
        if graph.model.fingerprint != engine.model_fingerprint:
            raise MassifError(f"analysis {key} was made with model {graph.model.name} "
                              f"({graph.model.fingerprint}); this server computes with "
                              f"{engine.model_name} ({engine.model_fingerprint}), so it cannot "
                              "edit it or replay its images")
        if graph.dataset.fingerprint != engine.dataset.fingerprint:
            raise MassifError(f"analysis {key} was made on dataset {graph.dataset.name}; this "
                              f"server has {engine.dataset_name}")

    def build(key: str, graph: Graph, preview: bool) -> Any:
        check(key, graph)
        size = {"max_images": PREVIEW_IMAGES, "sample_size": PREVIEW_IMAGES} if preview else {}
        return Editor.from_graph(engine.base, None, graph, net=engine.editor_net(),
                                 fx_graph=engine.fx_graph, **size)

    def use(key: str, preview: bool, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(editor)`` with the analysis's editor (or its preview one), built on first
        use, under that editor's own lock."""
        graph, _ = graph_entry(key)
        preview = preview and graph.benign.n_images > PREVIEW_IMAGES
        slot = slot_of(f"{key} preview" if preview else key)

        def with_editor() -> Any:
            if slot.editor is None:
                slot.editor = build(key, graph, preview)
            return fn(slot.editor)

        with slot.lock:  # torch runs in a thread that ends with it (``massif.threads``)
            return in_own_thread(with_editor, "massif-edit")

    @app.post("/graphs/{key}/edit", response_model=EditResult)
    def edit(key: str, body: EditBody) -> EditResult:
        from ..edit.checks import parse_checks

        ids = body.ids()
        checks = parse_checks(body.checks)
        if checks and body.preview:
            raise MassifError("checks run on every image: ask without preview")
        return use(key, body.preview, lambda ed: ed.evaluate(
            ids, mode=body.mode, adaptive=body.adaptive and not body.preview, checks=checks))

    def checks_status(job: Any) -> ChecksStatus:
        state, progress, error, result, _ = defenses.jobs.snapshot(job)
        return ChecksStatus(id=job.id, key=job.key, state=state, progress=progress,
                            error=error, result=result)

    @app.post("/graphs/{key}/checks", response_model=ChecksStatus, status_code=202)
    def start_checks(key: str, body: ChecksBody) -> ChecksStatus:
        from ..edit.checks import check_attack, parse_checks

        ids, checks = body.ids(), parse_checks(body.checks)

        def fork(ed: Any) -> Any:  # a bad mask or a check this analysis cannot run: 422 now
            ed.parse(ids, body.mode)
            for name in checks:
                check_attack(ed.session, name)
            return ed.fork()

        def work(ed: Any, hooks: Hooks) -> EditResult:
            return ed.evaluate(ids, mode=body.mode, checks=checks, progress=hooks.progress,
                               cancelled=hooks.cancelled)

        job = defenses.jobs.start(key, "checks", lambda: use(key, False, fork), work)
        if job is None:
            raise HTTPException(429, f"{defenses.RUNNING} long jobs (defense searches, deletion "
                                     "curves, checks) are running already; cancel one or wait "
                                     "for it")
        return checks_status(job)

    add_job_routes(app, defenses.jobs, "checks", "checks", "checks job", checks_status,
                   ChecksStatus)

    @app.post("/graphs/{key}/editor", response_model=EditorInfo)
    def warm_up(key: str, _body: EmptyBody) -> EditorInfo:
        """Build the analysis's editors ahead of the first deletion (the page calls this as
        soon as it opens an analysis): the preview one first, so a click that comes meanwhile
        waits only for that."""
        started = time.perf_counter()
        small = use(key, True, lambda ed: len(ed.indices))
        full = use(key, False, lambda ed: len(ed.indices))
        return EditorInfo(n_images=full, preview_images=small,
                          seconds=time.perf_counter() - started)

    @app.post("/graphs/{key}/images", response_model=Gallery)
    def images(key: str, body: GalleryBody) -> Gallery:
        return use(key, False, lambda ed: ed.gallery(body.k))

    @app.post("/graphs/{key}/images/{position}", response_model=ImageDetail)
    def one_image(key: str, position: int, _body: EmptyBody) -> ImageDetail:
        graph, _ = graph_entry(key)
        return use(key, False, lambda ed: ed.image(position, graph))

    @app.get("/graphs/{key}/dataset/{index}.png", include_in_schema=False)
    def dataset_image(key: str, index: int) -> Response:
        """One image of the server's dataset (the gallery's thumbnails): a file read, no
        model run, so a plain GET."""
        from ..pictures.visualize import to_png

        graph, _ = graph_entry(key)
        check(key, graph)
        if not 0 <= index < len(engine.dataset):
            raise HTTPException(404, f"no image {short(index, 20)} in the dataset (it has "
                                     f"{len(engine.dataset)})")
        png = in_own_thread(lambda: to_png(engine.dataset.load([index])[0], 56), "massif-png")
        return Response(png, media_type="image/png",
                        headers={"cache-control": "max-age=3600"})

    @app.post("/graphs/{key}/defense", response_model=DefenseStatus, status_code=202)
    def start_defense(key: str, body: DefenseBody) -> DefenseStatus:
        graph, _ = graph_entry(key)
        start = [s.strip() for s in body.start]

        def fork(ed: Any) -> Any:  # a bad start is refused here, before the search
            if start:
                try:
                    ed.session.parse(start, body.mode)
                except MassifError as e:
                    raise MassifError(f"start (the neurons already deleted): {e}") from None
            return ed.fork()

        job = defenses.start(key, body.budget, body.mode,
                             lambda: use(key, False, fork), graph, start=start)
        if job is None:
            raise HTTPException(429, f"{defenses.RUNNING} long jobs (defense searches, deletion "
                                     "curves, checks) are running already; cancel one or wait "
                                     "for it")
        return defenses.status(job)

    def defense_status(job: Any) -> DefenseStatus:
        status = defenses.status(job)
        if status.result is not None:
            status.result = DefenseResult.model_validate(status.result)
        return status

    add_job_routes(app, defenses.jobs, "defense", "defenses", "defense search", defense_status,
                   DefenseStatus)

    @app.post("/graphs/{key}/edited-model.pt", include_in_schema=False)
    def edited_model(key: str, body: MaskBody) -> Response:
        ids = body.ids()
        buf = io.BytesIO()
        use(key, False, lambda ed: ed.export(ids, buf, mode=body.mode))
        return Response(buf.getvalue(), media_type="application/octet-stream",
                        headers={"content-disposition":
                                 f'attachment; filename="{key}-edited.pt"'})

    return use
