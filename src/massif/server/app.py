"""``serve``: the workspace over HTTP: JSON, PNG pictures and the D3 page (DESIGN.md section 6).

A thin FastAPI app built by ``create_app`` (no global state: everything lives on
``app.state``). Every page has a JSON twin:

=====================================  =====================================================
page                                   JSON twin
=====================================  =====================================================
``/`` (``?benign=&target=&attack=…``)  ``/index.json``: model, classes, attacks, saved analyses
``/graphs/{key}``                      ``/graphs/{key}.json``: the graph JSON contract
``/graphs/{key}/nodes/{id}``           ``/graphs/{key}/nodes/{id}.json``: one node, its edges
=====================================  =====================================================

plus ``/compare`` and ``/compare.json`` (two analyses compared, ``compare_routes.py``),
``POST /analyses`` (start or find an analysis), ``GET /analyses.json?benign=…`` and
``GET /analyses/{key}.json`` (its status and progress), ``POST /analyses/{key}/cancel``,
``/graphs/{key}/pictures.json`` and the PNGs ``/graphs/{key}/nodes/{id}/picture.png`` (feature
visualization) and ``…/examples.png`` (dataset example strip), and the edit routes
(``edit_routes.py``).

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
of ``SECURITY_HEADERS`` (``frame-ancestors 'none'``: no other site can frame the page). Error
messages name workspace files by key, never by path, and show no absolute path (a dataset
folder named in a graph is shown by its last part).

A saved analysis whose ``graph.json`` cannot be read (truncated, edited by hand, another
schema) is *damaged*: its status says ``damaged`` with the reason, its routes answer 409 saying
how to redo it, ``/index.json`` leaves it out (logged once per analysis and reason, not on
every request), and asking for its pair again computes it anew.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request  # at module level: FastAPI reads route annotations here

from ..errors import SERVER_MEMORY_ADVICE, MassifError, is_index, out_of_memory, short
from ..io import as_path, usable_dir
from ..memory import release_cached
from ..pictures.files import Kind, example_patches, picture_file
from ..request import AnalysisRequest
from ..schemas import Graph, Node, first_error
from ..store import RUN_PREFIX, valid_key
from .answers import ClassInfo, Info, NodeDetail, Pictures, SavedAnalysis
from .compare_routes import add_compare_routes
from .defense_jobs import DefenseJobs
from .edit_routes import EmptyBody, add_edit_routes
from .jobs import (
    ATTACKS,
    AnalysisStatus,
    AttackName,
    Engine,
    JobManager,
    PairChoice,
)
from .listen import DEFAULT_HOST, Hosts

log = logging.getLogger("massif.server")
MAX_BODY = 1 << 20  # bytes of a request body

STATIC = Path(__file__).parent / "static"
# The page loads its scripts, styles and pictures from this server (pictures also as data: URIs,
# the edited model's download as a blob: URL); styles are also set in the HTML it builds. No
# inline script or event handler runs. 'unsafe-eval': the page evaluates no strings, but
# Playwright's wait_for_function, in the browser tests, polls its predicate with eval.
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-eval'; "
               "style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /api (FastAPI's Swagger page: its scripts come from a CDN and inline) and the report download
# (one file with its scripts inline, made to be opened from disk) keep only the framing rule.
FRAMING_POLICY = "frame-ancestors 'none'"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer"}
# The folders of an absolute path in a message (``imagefolder:/srv/data/flowers``, a dataset a
# graph names): only its last part is shown. Not a URL's (``http://host/a/``), nor a path the
# workspace's own name was put in for (``<workspace>/graphs/``).
ABSOLUTE_FOLDERS = re.compile(r"(?<![\w.~>/-])/(?!/)(?:[^\s/'\"]+/)+")


def attack_choice(graph: Graph) -> str:
    """The control panel's attack name (``pgd-l2``) for a graph's ``attack`` record."""
    return f"pgd-{graph.attack.norm}" if graph.attack.name == "pgd" else graph.attack.name


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
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..pictures import DEFAULT_STEPS, cache_root, make_graph_pictures
    from ..request import resolve_device
    from ..store import Workspace
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

    # (the workspaces a level below, whose analyses ``ws`` serves too, may hold pictures)
    picture_roots = [ws.root, *sorted(p.parent for p in ws.root.glob("*/graphs") if p.is_dir()),
                     picture_root]
    jobs = JobManager(ws, engine, make_pictures, lambda key: damage(key))  # (defined below)
    defenses = DefenseJobs()
    app = FastAPI(title="MASSIF", version="1", docs_url="/api", redoc_url=None)
    app.state.workspace, app.state.engine, app.state.jobs = ws, engine, jobs
    app.state.defenses, app.state.make_pictures = defenses, make_pictures
    app.state.hosts = hosts = Hosts(host)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = (STATIC / "index.html").read_bytes()
    cache_: dict[str, tuple[float, Graph, bytes]] = {}
    hidden = sorted({str(p) for root in (ws.root, picture_root)
                     for p in (root, root.resolve())}, key=len, reverse=True)
    body_methods: set[str] = set()  # the methods some route takes (POST), set once all are added

    def clean(message: str) -> str:
        """No server path in a message: the workspace and cache folders are named, not shown,
        and any other absolute path is shown by its last part."""
        for p in hidden:
            if p not in (".", ""):
                message = message.replace(p, "<workspace>" if p.startswith(str(ws.root))
                                          or p == str(ws.root.resolve()) else "<cache>")
        return ABSOLUTE_FOLDERS.sub("", message)[:2000]

    def error(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": clean(detail)}, status_code=status)

    @app.middleware("http")
    async def guard(request_: Request, call_next: Any) -> Any:
        """The security headers on every answer, pages, JSON and errors alike (module doc)."""
        response = await checked(request_, call_next)
        path = request_.url.path
        framing = path in ("/api", "/api/") or path.endswith("/report.html")
        response.headers["content-security-policy"] = FRAMING_POLICY if framing else PAGE_POLICY
        response.headers.update(SECURITY_HEADERS)
        return response

    async def checked(request_: Request, call_next: Any) -> Any:
        """Refuse another site's host name, big bodies and cross-site or non-JSON POSTs before
        any work (module doc)."""
        host = request_.headers.get("host")
        if not hosts.accepts(host):
            return error(421, hosts.refusal(host))
        length = request_.headers.get("content-length")
        if length is not None and (not is_index(length) or int(length) > MAX_BODY):
            return error(413, f"the request body is over {MAX_BODY // 1024} KB")
        if request_.method in body_methods:  # (other methods: 405 from the router, unread)
            if length is None:  # a chunked body could grow past the limit unseen
                return error(411, "send the body with a content-length")
            origin = request_.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != host:
                return error(403, "cross-origin requests are refused")
            if request_.headers.get("sec-fetch-site") == "cross-site":
                return error(403, "cross-site requests are refused")
            ctype = request_.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return error(415, "send a JSON body with content-type: application/json")
        try:
            return await call_next(request_)
        except Exception as e:  # a bug: one line in the log, a JSON 500 to the client
            no_memory = out_of_memory(e, SERVER_MEMORY_ADVICE)
            if no_memory is None:
                log.error("%s %s failed: %s: %s", request_.method, request_.url.path,
                          type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))
                return error(500, f"internal error ({type(e).__name__}); see the server's log")
        release_cached()  # no memory left for this request: free the cache, say so (503)
        return error(503, no_memory)

    @app.exception_handler(MassifError)
    async def _massif_error(_request: Request, exc: MassifError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request_: Request, exc: StarletteHTTPException) -> JSONResponse:
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 405 and allow:  # (the router's, with the methods it takes)
            answer = error(405, f"{short(request_.method, 20)} is not allowed here; use "
                                f"{allow}")
        else:
            answer = error(exc.status_code, str(exc.detail))
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            msg = str(err.get("msg")).removeprefix("Value error, ")[:200]
            parts.append(f"{short(where, 40)[1:-1]}: {msg}" if where else msg)
        return error(422, "; ".join(parts) or "invalid request")

    def graph_entry(key: str) -> tuple[Graph, bytes]:
        """The saved analysis ``key``, read once per change of its file: 404 when there is
        none, 409 when it cannot be read (damaged, saying how to redo it)."""
        if not valid_key(key):
            raise HTTPException(404, f"no analysis {short(key, 40)} (keys are 1 to 200 "
                                     "lower-case letters, digits and dashes)")
        path = ws.graph_path(key)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            raise HTTPException(404, f"no analysis {key!r} in this workspace") from None
        hit = cache_.get(key)
        if hit is None or hit[0] != mtime:
            try:
                graph = ws.load(key)  # validates against the contract
            except MassifError as e:
                redo = ("run the massif analyze that wrote it again" if key.startswith(RUN_PREFIX)
                        else "ask for its pair again (the page's Analyze, or POST /analyses) to "
                             "compute it anew")
                raise HTTPException(409, f"{e}; the analysis is damaged: {redo}") from None
            hit = (mtime, graph, graph.to_json(indent=None).encode())
            cache_[key] = hit
        return hit[1], hit[2]

    def damage(key: str) -> str | None:
        """Why the saved analysis ``key`` cannot be read; ``None`` when it can, or is not
        saved (the analyses' status then says ``damaged``, ``jobs.JobManager``)."""
        try:
            graph_entry(key)
        except HTTPException as e:
            return clean(str(e.detail)) if e.status_code == 409 else None
        return None

    def find_node(graph: Graph, key: str, neuron_id: str) -> Node:
        layer, sep, channel = neuron_id.rpartition(":")
        if not sep or not is_index(channel):
            raise HTTPException(404, f"{short(neuron_id, 40)} is not a neuron id; use "
                                     "layer:channel, e.g. mixed4a:12")
        try:
            return graph.node(f"{layer}:{int(channel)}")
        except KeyError:
            raise HTTPException(404, f"neuron {short(neuron_id, 40)} is not a node of "
                                     f"analysis {key}") from None

    def picture_path(graph: Graph, node: Node, kind: Kind) -> Path:
        """The workspace's picture if it has one, else the cache's (which may not exist)."""
        return picture_file(picture_roots, graph, node, kind)

    def picture_urls(key: str, graph: Graph, kind: str) -> dict[str, str]:
        out = {}
        for n in graph.nodes:
            if picture_path(graph, n, kind).is_file():
                out[n.id] = f"/graphs/{key}/nodes/{n.id}/{kind}.png"
        return out

    unlisted: dict[str, str] = {}  # analysis key → why it is not listed (logged once)

    def saved() -> list[SavedAnalysis]:
        rows = []
        for key in ws.keys():
            try:
                g, _ = graph_entry(key)
            except (HTTPException, MassifError, OSError) as e:  # damaged: not listed
                why = clean(str(e.detail if isinstance(e, HTTPException) else e))
                if unlisted.get(key) != why:  # once per analysis and reason, not per request
                    unlisted[key] = why
                    log.warning("not listing analysis %s: %s", key, why)
                continue
            rows.append(SavedAnalysis(
                key=key, benign=g.benign.name, target=g.target.name, attack=attack_choice(g),
                targeted=g.attack.targeted, max_strength=g.attack.strengths[-1],
                model=g.model.name, same_model=g.model.fingerprint == engine.model_fingerprint))
        return rows

    def html() -> Response:
        return Response(page, media_type="text/html")

    @app.get("/", include_in_schema=False)
    def index_page() -> Response:
        return html()

    @app.get("/index.json", response_model=Info)
    def index_json() -> Info:
        return Info(
            model=engine.model_name, model_fingerprint=engine.model_fingerprint,
            dataset=engine.dataset_name, can_analyze=engine.why_not is None,
            why_not=engine.why_not,
            classes=[ClassInfo(index=i, name=n) for i, n in enumerate(engine.class_names)],
            attacks=list(ATTACKS), default_max_strength=dict(ATTACKS),
            default_request=engine.default_choice(), analyses=saved())

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
        status = jobs.cancel(key) if valid_key(key) else None
        if status is None or status.state == "missing":
            raise HTTPException(404, f"no analysis {short(key, 40)} is saved or running")
        return status

    @app.get("/graphs/{key}.json", response_model=Graph)
    def graph_json(key: str) -> Response:
        return Response(graph_entry(key)[1], media_type="application/json")

    def page_or_404(request_: Request, check: Any) -> Response:
        """The page, after ``check()``; a browser asking for a missing analysis or neuron gets
        the page too, with status 404, and the page says in words what is missing (a damaged
        analysis: 409, and how to redo it)."""
        try:
            check()
        except HTTPException as e:
            if e.status_code not in (404, 409) or "text/html" not in request_.headers.get(
                    "accept", ""):
                raise
            return Response(page, status_code=e.status_code, media_type="text/html")
        return html()

    @app.get("/graphs/{key}/report.html", include_in_schema=False)
    def report_file(key: str) -> Response:
        from ..report import report_data, report_html

        graph, _ = graph_entry(key)
        body = report_html(report_data(graph, picture_roots, key))
        return Response(body, media_type="text/html", headers={
            "content-disposition": f'attachment; filename="massif-{key}.html"'})

    @app.get("/graphs/{key}", include_in_schema=False)
    def graph_page(key: str, request_: Request) -> Response:
        return page_or_404(request_, lambda: graph_entry(key))

    @app.get("/graphs/{key}/pictures.json", response_model=Pictures)
    def pictures_json(key: str) -> Pictures:
        graph, _ = graph_entry(key)
        return Pictures(pictures=picture_urls(key, graph, "picture"),
                        examples=picture_urls(key, graph, "examples"))

    @app.get("/graphs/{key}/nodes/{neuron_id}.json", response_model=NodeDetail)
    def node_json(key: str, neuron_id: str) -> NodeDetail:
        graph, _ = graph_entry(key)
        node = find_node(graph, key, neuron_id)
        urls = {kind: (f"/graphs/{key}/nodes/{node.id}/{kind}.png"
                       if picture_path(graph, node, kind).is_file() else None)
                for kind in ("picture", "examples")}
        incoming = sorted((e for e in graph.edges if e.target == node.id),
                          key=lambda e: -max(e.influence_benign, e.influence_attacked))
        outgoing = [e for e in graph.edges if e.source == node.id]
        return NodeDetail(key=key, node=node, incoming=incoming, outgoing=outgoing, **urls,
                          examples_info=(example_patches(picture_roots, graph, node, engine.dataset)
                                         if urls["examples"] else None))

    @app.get("/graphs/{key}/nodes/{neuron_id}", include_in_schema=False)
    def node_page(key: str, neuron_id: str, request_: Request) -> Response:
        return page_or_404(request_, lambda: find_node(graph_entry(key)[0], key, neuron_id))

    @app.get("/graphs/{key}/nodes/{neuron_id}/{kind}.png", include_in_schema=False)
    def node_png(key: str, neuron_id: str, kind: str) -> Response:
        from fastapi.responses import FileResponse

        if kind not in ("picture", "examples"):
            raise HTTPException(404, "pictures are picture.png and examples.png")
        graph, _ = graph_entry(key)
        path = picture_path(graph, find_node(graph, key, neuron_id), kind)
        if not path.is_file():
            raise HTTPException(404, f"no {kind} for {short(neuron_id, 40)} yet")
        return FileResponse(path, media_type="image/png")

    add_edit_routes(app, graph_entry, engine, defenses)
    add_compare_routes(app, graph_entry, STATIC)
    body_methods.update(m for route in app.routes for m in getattr(route, "methods", None) or ()
                        if m not in ("GET", "HEAD", "OPTIONS"))
    return app
