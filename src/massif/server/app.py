"""``serve``: the workspace over HTTP: JSON, PNG pictures and the D3 page (docs/web.md).

A thin FastAPI app built by ``create_app`` (no global state: everything lives on
``app.state``). Every page has a JSON twin:

=====================================  =====================================================
page                                   JSON twin
=====================================  =====================================================
``/`` (``?benign=&target=&attack=…``)  ``/index.json``: model, classes, attacks, saved analyses
``/graphs/{key}``                      ``/graphs/{key}.json``: the graph JSON contract
``/graphs/{key}/nodes/{id}``           ``/graphs/{key}/nodes/{id}.json``: one node, its edges
=====================================  =====================================================

A route lives in the module of the resource its path names, each with its routes listed in its
module doc: ``/``, ``/index.json`` and ``/analyses…`` in ``analysis_routes``; a saved analysis
read (``/graphs/{key}``, its ``.json``, ``report.html``, ``pictures.json``, ``nodes/…``) in
``graph_routes``; what computes on a saved analysis (``/graphs/{key}/edit``, ``editor``,
``defense``, ``images``, ``edited-model.pt``, ``/defenses/…``) in ``edit_routes``, its deletion
curves (``/graphs/{key}/curves``, ``/curves/…``) in ``curves_routes``, its numbers for export
(``/graphs/{key}/numbers.json``) in ``export_routes``; ``/compare`` in ``compare_routes``.
What every request meets first (the rules below) is ``guard``; how the workspace is read
(saved analyses, nodes, pictures, messages without paths) is ``site.Site``.

Analyses are computed on demand by one background worker (``jobs.JobManager``): requests for
the same analysis share one computation, results are saved in the workspace and found again at
once. Files are only ever read from paths built out of validated parts (a workspace key, a layer
of the graph, an integer channel), so no URL can reach outside the workspace.

Every request must name the server by one of its host names in ``Host`` (``listen.Hosts``:
the loopback names, and the ``host`` it is served on), else 421: a page of another site whose
name was made to resolve to this machine (DNS rebinding) is refused. Requests that compute or
change something are ``POST``s with a JSON body; a ``POST`` from a page of another origin
(``Origin`` or ``Sec-Fetch-Site`` says so) or without ``content-type: application/json`` is
refused, so a link, an image or a form on another site cannot set one off. Bodies over 1 MB are
refused. A method no route takes (``DELETE``, ``TRACE``) is answered 405 with an ``Allow``
header where the path exists, 404 where it does not. Every answer carries the security headers
of ``guard.SECURITY_HEADERS`` (``frame-ancestors 'none'``: no other site can frame the page). Error
messages name workspace files by key, never by path, and show no absolute path (a dataset
folder named in a graph is shown by its last part).

A saved analysis whose ``graph.json`` cannot be read (truncated, edited by hand, another
schema) is *damaged*: its status says ``damaged`` with the reason, its routes answer 409 saying
how to redo it, ``/index.json`` leaves it out (logged once per analysis and reason, not on
every request), and asking for its pair again computes it anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import as_path, usable_dir
from ..request import AnalysisRequest
from ..schemas import Graph
from ..store import Workspace
from .analysis_routes import add_analysis_routes
from .compare_routes import add_compare_routes
from .curves_routes import add_curves_routes
from .defense_jobs import DefenseJobs
from .edit_jobs import EditJobs
from .edit_routes import add_edit_routes
from .export_routes import add_export_routes
from .graph_routes import add_graph_routes
from .guard import add_guard
from .jobs import Engine, JobManager
from .listen import DEFAULT_HOST, Hosts
from .site import Site

STATIC = Path(__file__).parent / "static"


def create_app(workspace: str | Path, model: Any = "bundled", dataset: Any = None, *,
               device: str = "auto", max_images: int | None = None, batch_size: int | None = None,
               steps: int = 8, nodes_per_layer: int = 8, edges_per_node: int = 4,
               class_index: str | None = None, cache: str | Path | None = None,
               pictures: bool = True, picture_steps: int | None = None,
               request: AnalysisRequest | None = None, host: str = DEFAULT_HOST) -> Any:
    """Build the app serving ``workspace`` and computing new analyses with ``model``/``dataset``.

    ``model``: a spec (``bundled``, ``torchvision:NAME``, ``timm:NAME``, ``hf:PATH``,
    ``file.py:factory``) or a loaded
    ``massif.Model``; ``dataset``: a spec, a loaded ``Dataset`` or ``None`` for the model's own.
    Without a usable dataset the saved analyses are still served, and asking for a new one
    answers 422 with the reason. The other arguments are the ``AnalysisRequest`` fields every
    new analysis shares (or give that ``request`` whole; the page sets its classes, attack and
    strength). Pictures of neurons are looked up in the workspace, then in ``cache`` (default
    ``$MASSIF_CACHE`` or ``~/.cache/massif``); new analyses make theirs there unless
    ``pictures=False`` (``picture_steps``: optimisation steps per feature visualization).
    ``host``: the address it will be served on (``run(app, host, port)``); requests must name
    it, or a loopback name, in their ``Host`` header (421 otherwise, ``listen.Hosts``), so an
    in-process client asks for ``http://127.0.0.1`` or ``http://localhost``.
    """
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from ..devices import resolve_device
    from ..pictures import DEFAULT_STEPS, cache_root, make_graph_pictures
    from ..threads import in_own_thread

    if request is None:
        request = AnalysisRequest(benign=0, target=None, model=model, data=dataset,
                                  class_index=class_index, device=device,
                                  max_images=max_images, batch_size=batch_size, steps=steps,
                                  nodes_per_layer=nodes_per_layer,
                                  edges_per_node=edges_per_node)
    resolve_device(request.device)  # a bad device is refused before serving
    ws = Workspace(Path(workspace))
    picture_root = usable_dir(cache_root(as_path(cache, "cache") if cache is not None else None),
                              "the pictures' cache")
    # torch runs only in threads that end with their work (``massif.threads``)
    engine = in_own_thread(lambda: Engine.load(request, cache=picture_root, pictures=pictures,
                                               picture_steps=picture_steps), "massif-load")

    def make_pictures(graph: Graph, progress: Any) -> None:
        """Feature visualizations and dataset examples for ``graph``'s neurons, made only where
        the cache lacks them (``pictures=False`` turns this off). Analysis worker only."""
        if not pictures or graph.model.fingerprint != engine.model_fingerprint:
            return
        make_graph_pictures(engine.model, engine.dataset, graph, picture_root,
                            device=request.device, steps=picture_steps or DEFAULT_STEPS,
                            batch_size=request.batch_size, progress=progress)

    site = Site(ws, engine, picture_root)
    jobs = JobManager(ws, engine, make_pictures, site.damage)
    long_jobs = EditJobs(site.clean)  # defense searches and deletion curves, 2 at once
    defenses = DefenseJobs(long_jobs)
    app = FastAPI(title="MASSIF", version="1", docs_url="/api", redoc_url=None)
    app.state.workspace, app.state.engine, app.state.jobs = ws, engine, jobs
    app.state.defenses, app.state.make_pictures, app.state.site = defenses, make_pictures, site
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = (STATIC / "index.html").read_bytes()
    seal = add_guard(app, Hosts(host), site.clean)
    add_analysis_routes(app, site, jobs, page)
    add_graph_routes(app, site, page)
    use = add_edit_routes(app, site.graph_entry, engine, defenses)
    add_curves_routes(app, site, use, long_jobs)
    add_compare_routes(app, site.graph_entry, STATIC)
    add_export_routes(app, site)
    seal()
    return app
