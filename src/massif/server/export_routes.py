"""An analysis's numbers over HTTP (the page's *export ▾* menu, docs/web.md).

* ``GET /graphs/{key}/numbers.json?k=&pins=&deleted=`` → ``export.Numbers``: what ``massif
  report --numbers`` writes, at strength index ``k`` (default the largest) with those neurons
  pinned and deleted (comma-separated ids), and the deletion curves saved beside the analysis
  (``curves``, ``null`` when there are none). The page adds what only it holds (the deletion's
  and the defense's numbers) to its own export.
"""

from __future__ import annotations

from typing import Any

from ..errors import MassifError
from ..export import Numbers, numbers
from .site import Site


def add_export_routes(app: Any, site: Site) -> None:
    from fastapi import HTTPException

    @app.get("/graphs/{key}/numbers.json", response_model=Numbers)
    def graph_numbers(key: str, k: int | None = None, pins: str = "",
                      deleted: str = "") -> Numbers:
        from ..edit.curves import Curves

        graph, _ = site.graph_entry(key)
        saved = site.ws.graph_path(key).parent / "curves.json"
        curves = None
        if saved.is_file():
            try:
                curves = Curves.model_validate_json(saved.read_bytes())
            except ValueError:
                curves = None  # GET .../curves.json says why (409)
        split = lambda text: [s.strip() for s in text.split(",") if s.strip()]  # noqa: E731
        try:
            return numbers(graph, key=key, k=k, pins=split(pins), masked=split(deleted),
                           curves=curves)
        except MassifError as e:
            raise HTTPException(422, site.clean(str(e))) from None
