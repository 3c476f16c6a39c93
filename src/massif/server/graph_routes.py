"""Saved analyses over HTTP, read only (plain ``GET``s): each page has its JSON twin.

* ``GET /graphs/{key}``: the page on that analysis; ``GET /graphs/{key}.json``: its graph (the
  graph JSON contract); ``GET /graphs/{key}/report.html``: the standalone report, as a download;
* ``GET /graphs/{key}/nodes/{id}`` and ``…/{id}.json`` (``NodeDetail``: the node, its edges,
  its pictures); ``GET /graphs/{key}/pictures.json``: the pictures there are;
  ``GET /graphs/{key}/nodes/{id}/picture.png`` (feature visualization) and ``…/examples.png``
  (dataset example strip).

A browser asking for a missing analysis or neuron gets the page with status 404 (409 for a
damaged analysis), and the page says in words what is missing. Files are only read from paths
built out of validated parts (a workspace key, a layer of the graph, an integer channel).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request  # at module level: FastAPI reads annotations here

from ..errors import short
from ..pictures.files import example_patches
from ..schemas import Graph
from .answers import NodeDetail, Pictures
from .site import Site


def add_graph_routes(app: Any, site: Site, page: bytes) -> None:
    from fastapi import HTTPException
    from fastapi.responses import FileResponse, Response

    def page_or_404(request: Request, check: Any) -> Response:
        try:
            check()
        except HTTPException as e:
            if e.status_code not in (404, 409) or "text/html" not in request.headers.get(
                    "accept", ""):
                raise
            return Response(page, status_code=e.status_code, media_type="text/html")
        return Response(page, media_type="text/html")

    @app.get("/graphs/{key}.json", response_model=Graph)
    def graph_json(key: str) -> Response:
        return Response(site.graph_entry(key)[1], media_type="application/json")

    @app.get("/graphs/{key}/report.html", include_in_schema=False)
    def report_file(key: str) -> Response:
        from ..report import report_data, report_html

        graph, _ = site.graph_entry(key)
        body = report_html(report_data(graph, site.picture_roots, key))
        return Response(body, media_type="text/html", headers={
            "content-disposition": f'attachment; filename="massif-{key}.html"'})

    @app.get("/graphs/{key}", include_in_schema=False)
    def graph_page(key: str, request: Request) -> Response:
        return page_or_404(request, lambda: site.graph_entry(key))

    @app.get("/graphs/{key}/pictures.json", response_model=Pictures)
    def pictures_json(key: str) -> Pictures:
        graph, _ = site.graph_entry(key)
        return Pictures(pictures=site.picture_urls(key, graph, "picture"),
                        examples=site.picture_urls(key, graph, "examples"))

    @app.get("/graphs/{key}/nodes/{neuron_id}.json", response_model=NodeDetail)
    def node_json(key: str, neuron_id: str) -> NodeDetail:
        graph, _ = site.graph_entry(key)
        node = site.find_node(graph, key, neuron_id)
        urls = {kind: (f"/graphs/{key}/nodes/{node.id}/{kind}.png"
                       if site.picture_path(graph, node, kind).is_file() else None)
                for kind in ("picture", "examples")}
        incoming = sorted((e for e in graph.edges if e.target == node.id),
                          key=lambda e: -max(e.influence_benign, e.influence_attacked))
        outgoing = [e for e in graph.edges if e.source == node.id]
        examples = (example_patches(site.picture_roots, graph, node, site.engine.dataset)
                    if urls["examples"] else None)
        return NodeDetail(key=key, node=node, incoming=incoming, outgoing=outgoing, **urls,
                          examples_info=examples)

    @app.get("/graphs/{key}/nodes/{neuron_id}", include_in_schema=False)
    def node_page(key: str, neuron_id: str, request: Request) -> Response:
        return page_or_404(request,
                           lambda: site.find_node(site.graph_entry(key)[0], key, neuron_id))

    @app.get("/graphs/{key}/nodes/{neuron_id}/{kind}.png", include_in_schema=False)
    def node_png(key: str, neuron_id: str, kind: str) -> Response:
        if kind not in ("picture", "examples"):
            raise HTTPException(404, "pictures are picture.png and examples.png")
        graph, _ = site.graph_entry(key)
        path = site.picture_path(graph, site.find_node(graph, key, neuron_id), kind)
        if not path.is_file():
            raise HTTPException(404, f"no {kind} for {short(neuron_id, 40)} yet")
        return FileResponse(path, media_type="image/png")
