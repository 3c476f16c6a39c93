"""Compare two saved analyses over HTTP (``comparison.compare``).

* ``GET /compare.json?a=KEY&b=KEY[&ka=K][&kb=K]`` → ``comparison.Comparison``: analyses ``a`` and
  ``b`` of the workspace at strength indices ``ka`` and ``kb`` (default: each one's largest);
  ``b`` may be ``a`` (two strengths of one analysis).
* ``GET /compare?a=KEY[&b=KEY][&ka=K][&kb=K]``: the comparison page (``static/compare.html``),
  which reads the JSON above and lets the user choose both analyses and strengths; the URL
  always names what is shown.

Reading only, so plain ``GET``s: nothing here computes beyond comparing two stored graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..comparison import Comparison, compare
from ..schemas import Graph


def add_compare_routes(app: Any, graph_entry: Callable[[str], tuple[Graph, bytes]],
                       static: Path) -> None:
    from fastapi import HTTPException
    from fastapi.responses import Response

    page = (static / "compare.html").read_bytes()

    def strength(graph: Graph, k: int | None, name: str) -> float | None:
        if k is None:
            return None
        values = graph.attack.strengths
        if not 0 <= k < len(values):
            raise HTTPException(422, f"{name} is a strength index from 0 to {len(values) - 1}, "
                                     f"not {k}")
        return values[k]

    @app.get("/compare.json", response_model=Comparison)
    def compare_json(a: str, b: str, ka: int | None = None, kb: int | None = None
                     ) -> Comparison:
        graph_a, _ = graph_entry(a)
        graph_b, _ = graph_entry(b)
        return compare(graph_a, graph_b, strength(graph_a, ka, "ka"),
                       strength(graph_b, kb, "kb"), a, b)

    @app.get("/compare", include_in_schema=False)
    def compare_page(a: str | None = None, b: str | None = None) -> Response:
        # An analysis the URL names that is not there: the page still comes (it says so in
        # words, from /compare.json), with the status of what is missing (404, or 409 damaged).
        for key in (a, b):
            if key:
                try:
                    graph_entry(key)
                except HTTPException as e:
                    return Response(page, media_type="text/html", status_code=e.status_code)
        return Response(page, media_type="text/html")
