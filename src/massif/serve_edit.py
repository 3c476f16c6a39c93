"""The ``edit`` stage over HTTP: delete neurons of a saved analysis and measure the attack.

Routes added to the app by ``add_edit_routes`` (each a JSON twin of the page's edit panel):

* ``GET /graphs/{key}/edit.json?mask=mixed4a:12,mixed4b:3&mode=zero`` → ``edit.EditResult``:
  clean accuracy and ASR per strength before and after, for the stored adversarial images
  (transfer) and a fresh attack through the edited model (adaptive); ``&adaptive=false`` skips
  the fresh attack (the slow part); ``&preview=true`` answers, without it, on the first 250
  images of the class and of the sample (an estimate within a second). The page asks for the
  preview, then without the fresh attack, then with it;
* ``POST /graphs/{key}/editor``: build the editors now (the page asks when editing starts);
* ``GET /graphs/{key}/defense.json?budget=5`` → ``edit.DefenseResult``: the greedy defense and
  its two baselines (random neurons, top emphasized by vulnerability);
* ``GET /graphs/{key}/edited-model.pt?mask=…&mode=…``: the edited model to take away (the state
  dict plus the mask list, see ``edit.Editor.export``).

An ``Editor`` (the class's images, the stored attacks and a copy of the model) is built on the
first request for an analysis and kept for the next ones (the two most recent analyses). Edits
run one at a time: the editor's model copy carries the mask hooks while it evaluates.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .contract import Graph
from .errors import MassifError  # bad requests: 422 with the message

KEEP = 4  # editors kept in memory (a full one and a preview one per analysis)
PREVIEW_IMAGES = 250  # images (of the class, and of the all-class sample) behind a preview
Mode = Literal["zero", "mean"]


class EditorInfo(BaseModel):
    """``POST /graphs/{key}/editor``: the editors are ready."""

    n_images: int
    preview_images: int
    seconds: float


def add_edit_routes(app: Any, graph_entry: Callable[[str], tuple[Graph, bytes]],
                    engine: Any) -> None:
    from fastapi import Query
    from fastapi.responses import FileResponse
    from starlette.background import BackgroundTask

    from .edit import DefenseResult, Editor, EditResult

    editors: OrderedDict[str, Editor] = OrderedDict()
    lock = threading.Lock()

    def editor(key: str, preview: bool = False) -> Editor:
        """The analysis's editor, or its preview editor (the first ``PREVIEW_IMAGES`` images of
        the class and of the sample); call with ``lock`` held."""
        graph, _ = graph_entry(key)
        preview = preview and graph.benign.n_images > PREVIEW_IMAGES
        slot = f"{key} preview" if preview else key
        if slot in editors:
            editors.move_to_end(slot)
            return editors[slot]
        if engine.why_not:
            raise MassifError(engine.why_not)
        if graph.model.fingerprint != engine.model_fingerprint:
            raise MassifError(f"analysis {key} was made with model {graph.model.name} "
                              f"({graph.model.fingerprint}); this server computes with "
                              f"{engine.model_name} ({engine.model_fingerprint}), so it cannot "
                              "edit it")
        if graph.dataset.fingerprint != engine.dataset.fingerprint:
            raise MassifError(f"analysis {key} was made on dataset {graph.dataset.name}; this "
                              f"server has {engine.dataset_name}")
        size = {"max_images": PREVIEW_IMAGES, "sample_size": PREVIEW_IMAGES} if preview else {}
        made = Editor.from_graph(engine.model, engine.dataset, graph,
                                 device=engine.options.get("device", "auto"),
                                 batch_size=engine.options.get("batch_size", 256), **size)
        editors[slot] = made
        while len(editors) > KEEP:
            editors.popitem(last=False)
        return made

    def neuron_ids(mask: str) -> list[str]:
        return [s.strip() for s in mask.split(",") if s.strip()]

    MASK = Query(..., description="comma-separated neuron ids, e.g. mixed4a:12,mixed4b:3")

    @app.get("/graphs/{key}/edit.json", response_model=EditResult)
    def edit_json(key: str, mask: str = MASK, mode: Mode = "zero",
                  adaptive: bool = Query(True, description="false: skip the fresh attack "
                                         "(adaptive_asr null), answered several times faster"),
                  preview: bool = Query(False, description=f"true: only the first "
                                        f"{PREVIEW_IMAGES} images of the class and of the "
                                        "sample, without the fresh attack (an estimate, "
                                        "answered at once)")) -> EditResult:
        with lock:
            return editor(key, preview).evaluate(neuron_ids(mask), mode=mode,
                                                 adaptive=adaptive and not preview)

    @app.post("/graphs/{key}/editor", response_model=EditorInfo)
    def warm_up(key: str) -> EditorInfo:
        """Build the analysis's editors ahead of the first deletion (the page calls this when
        "click deletes neurons" is ticked): the preview one first, so a click that comes
        meanwhile waits only for that."""
        started = time.perf_counter()
        with lock:
            small = editor(key, preview=True)
        with lock:
            full = editor(key)
        return EditorInfo(n_images=len(full.indices), preview_images=len(small.indices),
                          seconds=time.perf_counter() - started)

    @app.get("/graphs/{key}/defense.json", response_model=DefenseResult)
    def defense_json(key: str, budget: int = Query(5, ge=1, le=64)) -> DefenseResult:
        graph, _ = graph_entry(key)
        with lock:
            return editor(key).suggest_defense(budget, graph=graph)

    @app.get("/graphs/{key}/edited-model.pt", include_in_schema=False)
    def edited_model(key: str, mask: str = MASK, mode: Mode = "zero") -> FileResponse:
        with lock:
            ed = editor(key)
            folder = Path(tempfile.mkdtemp(prefix="massif-export-"))
            path = ed.export(neuron_ids(mask), folder / f"{key}-edited.pt", mode=mode)

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            folder.rmdir()

        return FileResponse(path, media_type="application/octet-stream",
                            filename=path.name, background=BackgroundTask(cleanup))

