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

plus ``POST /analyses`` (start or find an analysis), ``GET /analyses.json?benign=…`` and
``GET /analyses/{key}.json`` (its status and progress), ``/graphs/{key}/pictures.json`` and the
PNGs ``/graphs/{key}/nodes/{id}/picture.png`` (feature visualization) and ``…/examples.png``
(dataset example strip), read from the workspace when the ``visualize`` stage has made them.

Analyses are computed on demand by one background worker (``jobs.JobManager``): requests for
the same analysis share one computation, results are saved in the workspace and found again at
once. Files are only ever read from paths built out of validated parts (a workspace key, a layer
of the graph, an integer channel), so no URL can reach outside the workspace.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .contract import Edge, Graph, Node
from .errors import MassifError
from .serve_edit import add_edit_routes
from .serve_jobs import ATTACKS, AnalysisRequest, AnalysisStatus, AttackName, Engine, JobManager

STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class ClassInfo(BaseModel):
    index: int
    name: str


class SavedAnalysis(BaseModel):
    key: str
    benign: str
    target: str
    attack: str
    targeted: bool
    max_strength: float
    model: str
    same_model: bool = Field(description="made with the model this server computes with")


class Info(BaseModel):
    """``/index.json``: what the control panel offers."""

    model: str
    model_fingerprint: str
    dataset: str | None
    can_analyze: bool
    why_not: str | None = None
    classes: list[ClassInfo]
    attacks: list[str]
    default_max_strength: dict[str, float]
    default_request: AnalysisRequest
    analyses: list[SavedAnalysis]


class NodeDetail(BaseModel):
    """``/graphs/{key}/nodes/{id}.json``: a node, its edges and its pictures."""

    key: str
    node: Node
    incoming: list[Edge]
    outgoing: list[Edge]
    picture: str | None
    examples: str | None


class Pictures(BaseModel):
    """Which neurons of a graph have pictures: neuron id → URL."""

    pictures: dict[str, str]
    examples: dict[str, str]


def attack_choice(graph: Graph) -> str:
    """The control panel's attack name (``pgd-l2``) for a graph's ``attack`` record."""
    return f"pgd-{graph.attack.norm}" if graph.attack.name == "pgd" else graph.attack.name


def create_app(workspace: str | Path, model: Any = "bundled", dataset: Any = None, *,
               device: str = "auto", max_images: int | None = None, batch_size: int = 256,
               steps: int = 8, nodes_per_layer: int = 8, edges_per_node: int = 4,
               class_index: str | None = None, cache: str | Path | None = None,
               pictures: bool = True, picture_steps: int | None = None) -> Any:
    """Build the app serving ``workspace`` and computing new analyses with ``model``/``dataset``.

    ``model``: a spec (``bundled``, ``torchvision:NAME``, ``file.py:factory``) or a loaded
    ``massif.Model``; ``dataset``: a spec, a loaded ``Dataset`` or ``None`` for the model's own.
    Without a usable dataset the saved analyses are still served, and asking for a new one
    answers 422 with the reason. The other arguments are passed to ``massif.analyze``.
    Pictures of neurons are looked up in the workspace, then in ``cache`` (default
    ``$MASSIF_CACHE`` or ``~/.cache/massif``); new analyses make theirs there unless
    ``pictures=False`` (``picture_steps``: optimisation steps per feature visualization).
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    from .pictures import cache_root
    from .store import Workspace

    engine = Engine.load(model, dataset, class_index=class_index, device=device,
                         max_images=max_images, batch_size=batch_size, steps=steps,
                         nodes_per_layer=nodes_per_layer, edges_per_node=edges_per_node,
                         cache=cache_root(cache), pictures=pictures,
                         picture_steps=picture_steps)
    ws = Workspace(Path(workspace))
    picture_roots = [ws.root, cache_root(cache)]
    jobs = JobManager(ws, engine)
    app = FastAPI(title="MASSIF", version="1", docs_url="/api", redoc_url=None)
    app.state.workspace, app.state.engine, app.state.jobs = ws, engine, jobs
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = (STATIC / "index.html").read_bytes()
    cache: dict[str, tuple[float, Graph, bytes]] = {}

    @app.exception_handler(MassifError)
    async def _massif_error(_request: Request, exc: MassifError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    def graph_entry(key: str) -> tuple[Graph, bytes]:
        try:
            path = ws.graph_path(key)
        except KeyError:
            raise HTTPException(404, f"no analysis {key!r} (keys are lower-case letters, "
                                     "digits and dashes)") from None
        if not path.is_file():
            raise HTTPException(404, f"no analysis {key!r} in this workspace")
        mtime = path.stat().st_mtime
        hit = cache.get(key)
        if hit is None or hit[0] != mtime:
            graph = Graph.load(path)  # validates against the contract
            hit = (mtime, graph, graph.to_json(indent=None).encode())
            cache[key] = hit
        return hit[1], hit[2]

    def find_node(graph: Graph, key: str, neuron_id: str) -> Node:
        layer, sep, channel = neuron_id.rpartition(":")
        if not sep or not channel.isdigit():
            raise HTTPException(404, f"{neuron_id!r} is not a neuron id; use layer:channel, "
                                     "e.g. mixed4a:12")
        try:
            return graph.node(f"{layer}:{int(channel)}")
        except KeyError:
            raise HTTPException(404, f"neuron {neuron_id} is not a node of analysis "
                                     f"{key}") from None

    def picture_path(graph: Graph, node: Node, kind: str) -> Path:
        """The workspace's picture if it has one, else the cache's (which may not exist)."""
        if kind == "picture":
            folder = Path("pictures") / graph.model.fingerprint
        else:
            folder = Path("examples") / f"{graph.model.fingerprint}-{graph.dataset.fingerprint}"
        relative = folder / node.layer / f"{node.channel}.png"
        for root in picture_roots:
            if (root / relative).is_file():
                return root / relative
        return picture_roots[-1] / relative

    def picture_urls(key: str, graph: Graph, kind: str) -> dict[str, str]:
        out = {}
        for n in graph.nodes:
            if picture_path(graph, n, kind).is_file():
                out[n.id] = f"/graphs/{key}/nodes/{n.id}/{kind}.png"
        return out

    def saved() -> list[SavedAnalysis]:
        rows = []
        for key in ws.keys():
            try:
                g, _ = graph_entry(key)
            except (HTTPException, MassifError):
                continue  # unreadable or another schema version: not listed
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
            default_request=engine.default_request(), analyses=saved())

    @app.post("/analyses", response_model=AnalysisStatus)
    def start_analysis(request: AnalysisRequest) -> AnalysisStatus:
        return jobs.submit(request)

    @app.get("/analyses.json", response_model=AnalysisStatus)
    def find_analysis(benign: str, target: str, attack: AttackName = "fgm",
                      targeted: bool = True, max_strength: float | None = None) -> AnalysisStatus:
        request = AnalysisRequest(benign=benign, target=target, attack=attack,
                                  targeted=targeted, max_strength=max_strength)
        return jobs.status(jobs.key_of(request))

    @app.get("/analyses/{key}.json", response_model=AnalysisStatus)
    def analysis_status(key: str) -> AnalysisStatus:
        status = jobs.status(key)
        if status.state == "missing":
            raise HTTPException(404, f"no analysis {key!r} is saved or running")
        return status

    @app.get("/graphs/{key}.json", response_model=Graph)
    def graph_json(key: str) -> Response:
        return Response(graph_entry(key)[1], media_type="application/json")

    @app.get("/graphs/{key}", include_in_schema=False)
    def graph_page(key: str) -> Response:
        graph_entry(key)
        return html()

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
        return NodeDetail(key=key, node=node, incoming=incoming, outgoing=outgoing, **urls)

    @app.get("/graphs/{key}/nodes/{neuron_id}", include_in_schema=False)
    def node_page(key: str, neuron_id: str) -> Response:
        find_node(graph_entry(key)[0], key, neuron_id)
        return html()

    @app.get("/graphs/{key}/nodes/{neuron_id}/{kind}.png", include_in_schema=False)
    def node_png(key: str, neuron_id: str, kind: str) -> FileResponse:
        if kind not in ("picture", "examples"):
            raise HTTPException(404, "pictures are picture.png and examples.png")
        graph, _ = graph_entry(key)
        path = picture_path(graph, find_node(graph, key, neuron_id), kind)
        if not path.is_file():
            raise HTTPException(404, f"no {kind} for {neuron_id} yet")
        return FileResponse(path, media_type="image/png")

    add_edit_routes(app, graph_entry, engine)
    return app



def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is a one-line ``MassifError``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise MassifError(f"cannot serve on host {host!r}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise MassifError(f"port {port} on {host} is already in use; stop the other "
                              f"server or choose another port with --port") from None
        raise MassifError(f"cannot serve on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def run(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
        sock: socket.socket | None = None) -> None:
    """Serve ``app`` on ``host:port`` (127.0.0.1 unless told otherwise) until Ctrl+C.

    Prints the address first. A port in use raises ``MassifError`` with one line; nothing
    listens beyond ``host``. ``sock``: a socket from ``bind`` (bind first, then load the model,
    so a port in use is reported at once)."""
    import uvicorn

    sock = sock or bind(host, port)
    real_port = sock.getsockname()[1]
    print(f"MASSIF is serving on {address(host, real_port)}  (Ctrl+C to stop)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def serve_demo(workspace: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               progress: Any = None) -> None:
    """The embedded default: analyse Sneaker → Sandal (targeted FGM up to 3.5) on the bundled
    model if the workspace lacks it, then serve the page on ``host:port``."""
    sock = bind(host, port)
    app = create_app(workspace, "bundled")
    jobs: JobManager = app.state.jobs
    status = jobs.submit(app.state.engine.default_request(), progress=progress)
    if status.state != "done":
        print("analysing the default pair Sneaker -> Sandal ...", file=sys.stderr, flush=True)
        status = jobs.wait(status.key)
        if status.state != "done":
            raise MassifError(f"the default analysis failed: {status.error}")
    app.state.engine.pictures(app.state.workspace.load(status.key), progress)
    run(app, host, port, sock)
