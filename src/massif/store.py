"""The workspace on disk: analyses (``graph.json``) and caches, content-addressed.

Layout of a workspace folder::

    <root>/graphs/<key>/graph.json      one merged graph per (model, dataset, pair, attack, params)
    <root>/pictures/<model fingerprint>/...   feature visualizations (see ``visualize``)
    <root>/examples/<model fp>-<dataset fp>/... dataset examples (see ``examples``)

``key`` is a readable slug plus a hash of everything that determines the graph, so the same
request always lands on the same folder and a finished analysis is found again at once. Every
file is written atomically (temporary file + rename): a killed run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import MassifError
from .files import slug, write_atomic
from .request import analysis_key
from .schemas import Graph

KEY_PATTERN = re.compile(r"[a-z0-9-]{1,200}")
RUN_PREFIX = "run-"  # the keys of analyses found beside a workspace's own (``Workspace.runs``)


def graph_key(graph: Graph) -> str:
    """The key of an existing graph (recomputed from its own fields; the nodes narrow layers
    took, ``params.layer_nodes``, are a result, not part of the request)."""
    return analysis_key(graph.model.fingerprint, graph.dataset.fingerprint, graph.benign.index,
                        graph.target.index, graph.attack.model_dump(),
                        graph.params.model_dump(exclude={"layer_nodes"}), graph.benign.name,
                        graph.target.name, narrow=graph.params.layer_nodes is not None)


def valid_key(key: str) -> bool:
    """Keys are 1 to 200 lower-case letters, digits and dashes (no dots: no path escapes)."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


@dataclass
class Workspace:
    """A workspace folder. Its own analyses are ``graphs/<key>/graph.json``; the analyses that
    ``massif analyze --out`` wrote in the folder itself or a level below it (``graph.json``,
    ``<run>/graph.json``), and those of workspaces a level below it
    (``<ws>/graphs/<key>/graph.json``), are served too, never written to, under a key made from
    their place: ``run-<folder>`` (``massif serve runs`` shows what ``analyze --out runs/NAME``
    made as ``run-name``). Such a key never names a request's analysis, so a run made with
    other options (``--layers``) is never taken for the one a request asks for."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise MassifError(f"workspace {self.root} is a file, not a folder")

    def folder(self, key: str) -> Path:
        """Where this workspace saves (and checkpoints) the analysis ``key``."""
        if not valid_key(key):
            raise KeyError(key)
        return self.root / "graphs" / key

    def graph_path(self, key: str) -> Path:
        """The file of the analysis ``key``: a run's (``run-…``) or the workspace's own."""
        own = self.folder(key) / "graph.json"
        if key.startswith(RUN_PREFIX) and not own.is_file():
            return self.runs().get(key, own)
        return own

    def runs(self) -> dict[str, Path]:
        """The analyses found beside the workspace's own: ``run-<place>`` → file."""
        found: dict[str, Path] = {}
        patterns = ("graph.json", "*/graph.json", "*/graphs/*/graph.json")
        for path in sorted(p for pattern in patterns for p in self.root.glob(pattern)):
            place = path.parent.relative_to(self.root).parts or (self.root.resolve().name,)
            key = RUN_PREFIX + slug("-".join(place))[:150]
            if key in found:  # two places with one slug: the second gets a hash of its own
                key += "-" + hashlib.sha256(str(place).encode()).hexdigest()[:8]
            found[key] = path
        return found

    def has(self, key: str) -> bool:
        try:
            return self.graph_path(key).is_file()
        except KeyError:
            return False

    def save(self, graph: Graph, key: str | None = None) -> str:
        key = key or graph_key(graph)
        graph.save(self.folder(key) / "graph.json")
        return key

    def load(self, key: str) -> Graph:
        """The saved graph; a damaged one is a ``MassifError`` naming only the key."""
        return Graph.load(self.graph_path(key), name=f"analysis {key}")

    def keys(self) -> list[str]:
        folder = self.root / "graphs"
        own = ({p.parent.name for p in folder.glob("*/graph.json") if valid_key(p.parent.name)}
               if folder.is_dir() else set())
        return sorted(own | set(self.runs()))

    def write(self, relative: str, data: str | bytes) -> Path:
        return write_atomic(self.root / relative, data)
