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
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .contract import Graph, write_atomic


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def analysis_key(model_fp: str, dataset_fp: str, benign: int, target: int,
                 attack: dict, params: dict, benign_name: str = "", target_name: str = "") -> str:
    """A stable folder name: ``<benign>-<target>-<attack>-<hash>``."""
    blob = json.dumps(
        {"model": model_fp, "dataset": dataset_fp, "benign": benign, "target": target,
         "attack": attack, "params": params}, sort_keys=True,
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{_slug(benign_name or str(benign))}-{_slug(target_name or str(target))}-" \
           f"{_slug(str(attack.get('name', 'attack')))}-{digest}"


def graph_key(graph: Graph) -> str:
    """The key of an existing graph (recomputed from its own fields)."""
    attack = graph.attack.model_dump()
    return analysis_key(graph.model.fingerprint, graph.dataset.fingerprint, graph.benign.index,
                        graph.target.index, attack, graph.params.model_dump(),
                        graph.benign.name, graph.target.name)


@dataclass
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def graph_path(self, key: str) -> Path:
        if not re.fullmatch(r"[a-z0-9-]+", key):
            raise KeyError(key)
        return self.root / "graphs" / key / "graph.json"

    def has(self, key: str) -> bool:
        return self.graph_path(key).is_file()

    def save(self, graph: Graph, key: str | None = None) -> str:
        key = key or graph_key(graph)
        graph.save(self.graph_path(key))
        return key

    def load(self, key: str) -> Graph:
        return Graph.load(self.graph_path(key))

    def keys(self) -> list[str]:
        folder = self.root / "graphs"
        if not folder.is_dir():
            return []
        return sorted(p.parent.name for p in folder.glob("*/graph.json"))

    def write(self, relative: str, data: str | bytes) -> Path:
        return write_atomic(self.root / relative, data)
