"""The ``edit`` stage over HTTP: delete neurons of a saved analysis and measure the attack.

Routes added to the app by ``add_edit_routes`` (each a JSON twin of the page's edit panel):

* ``GET /graphs/{key}/edit.json?mask=mixed4a:12,mixed4b:3&mode=zero`` → ``edit.EditResult``:
  clean accuracy and ASR per strength before and after, for the stored adversarial images
  (transfer) and a fresh attack through the edited model (adaptive); ``&adaptive=false`` skips
  the fresh attack (the slow part), which the page asks for first;
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
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .contract import Graph
from .errors import MassifError  # bad requests: 422 with the message

KEEP = 2  # editors kept in memory
Mode = Literal["zero", "mean"]


def add_edit_routes(app: Any, graph_entry: Callable[[str], tuple[Graph, bytes]],
                    engine: Any) -> None:
    from fastapi import Query
    from fastapi.responses import FileResponse
    from starlette.background import BackgroundTask

    from .edit import DefenseResult, Editor, EditResult

    editors: OrderedDict[str, Editor] = OrderedDict()
    lock = threading.Lock()

    def editor(key: str) -> Editor:
        """The analysis's editor (call with ``lock`` held)."""
        graph, _ = graph_entry(key)
        if key in editors:
            editors.move_to_end(key)
            return editors[key]
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
        made = Editor.from_graph(engine.model, engine.dataset, graph,
                                 device=engine.options.get("device", "auto"),
                                 batch_size=engine.options.get("batch_size", 256))
        editors[key] = made
        while len(editors) > KEEP:
            editors.popitem(last=False)
        return made

    def neuron_ids(mask: str) -> list[str]:
        return [s.strip() for s in mask.split(",") if s.strip()]

    MASK = Query(..., description="comma-separated neuron ids, e.g. mixed4a:12,mixed4b:3")

    @app.get("/graphs/{key}/edit.json", response_model=EditResult)
    def edit_json(key: str, mask: str = MASK, mode: Mode = "zero",
                  adaptive: bool = Query(True, description="false: skip the fresh attack "
                                         "(adaptive_asr null), answered several times faster")
                  ) -> EditResult:
        with lock:
            return editor(key).evaluate(neuron_ids(mask), mode=mode, adaptive=adaptive)

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

