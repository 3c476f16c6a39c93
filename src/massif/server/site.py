"""The workspace as the server reads it: saved analyses by key, their nodes and pictures, and
error messages without server paths. Every route module reads through one ``Site``.

A saved analysis is read once per change of its ``graph.json`` (``graph_entry``); one that
cannot be read (truncated, edited by hand, another schema) is *damaged*: 409 with how to redo
it, and left out of ``saved`` (logged once per analysis and reason, not on every request).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..errors import MassifError, is_index, short
from ..pictures.files import Kind, picture_file
from ..schemas import Graph, Node
from ..store import RUN_PREFIX, Workspace, valid_key
from .answers import SavedAnalysis

log = logging.getLogger("massif.server")

# The folders of an absolute path in a message (``imagefolder:/srv/data/flowers``, a dataset a
# graph names): only its last part is shown. Not a URL's (``http://host/a/``), nor a path the
# workspace's own name was put in for (``<workspace>/graphs/``).
ABSOLUTE_FOLDERS = re.compile(r"(?<![\w.~>/-])/(?!/)(?:[^\s/'\"]+/)+")


def attack_choice(graph: Graph) -> str:
    """The control panel's attack name (``pgd-l2``) for a graph's ``attack`` record."""
    from ..attacks import attack_label

    return attack_label(graph.attack)


class Site:
    """Workspace ``ws`` served with ``engine`` (its model's fingerprint marks the analyses it
    can edit), pictures looked up in the workspace, the workspaces a level below it, and
    ``picture_root`` (the cache)."""

    def __init__(self, ws: Workspace, engine: Any, picture_root: Path) -> None:
        self.ws, self.engine, self.picture_root = ws, engine, picture_root
        self.picture_roots = [ws.root, *sorted(p.parent for p in ws.root.glob("*/graphs")
                                               if p.is_dir()), picture_root]
        self._hidden = sorted({str(p) for root in (ws.root, picture_root)
                               for p in (root, root.resolve())}, key=len, reverse=True)
        self._cache: dict[str, tuple[float, Graph, bytes]] = {}
        self._unlisted: dict[str, str] = {}  # analysis key → why it is not listed (logged once)

    def clean(self, message: str) -> str:
        """No server path in a message: the workspace and cache folders are named, not shown,
        and any other absolute path is shown by its last part."""
        root = str(self.ws.root)
        for p in self._hidden:
            if p not in (".", ""):
                message = message.replace(p, "<workspace>" if p.startswith(root)
                                          or p == str(self.ws.root.resolve()) else "<cache>")
        return ABSOLUTE_FOLDERS.sub("", message)[:2000]

    def graph_entry(self, key: str) -> tuple[Graph, bytes]:
        """The saved analysis ``key`` and its JSON, read once per change of its file: 404 when
        there is none, 409 when it cannot be read (damaged, saying how to redo it)."""
        from fastapi import HTTPException

        if not valid_key(key):
            raise HTTPException(404, f"no analysis {short(key, 40)} (keys are 1 to 200 "
                                     "lower-case letters, digits and dashes)")
        path = self.ws.graph_path(key)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            raise HTTPException(404, f"no analysis {key!r} in this workspace") from None
        hit = self._cache.get(key)
        if hit is None or hit[0] != mtime:
            try:
                graph = self.ws.load(key)  # validates against the contract
            except MassifError as e:
                redo = ("run the massif analyze that wrote it again" if key.startswith(RUN_PREFIX)
                        else "ask for its pair again (the page's Analyze, or POST /analyses) to "
                             "compute it anew")
                raise HTTPException(409, f"{e}; the analysis is damaged: {redo}") from None
            hit = (mtime, graph, graph.to_json(indent=None).encode())
            self._cache[key] = hit
        return hit[1], hit[2]

    def damage(self, key: str) -> str | None:
        """Why the saved analysis ``key`` cannot be read; ``None`` when it can, or is not
        saved (the analyses' status then says ``damaged``, ``jobs.JobManager``)."""
        from fastapi import HTTPException

        try:
            self.graph_entry(key)
        except HTTPException as e:
            return self.clean(str(e.detail)) if e.status_code == 409 else None
        return None

    def find_node(self, graph: Graph, key: str, neuron_id: str) -> Node:
        """Node ``neuron_id`` (``layer:channel``) of analysis ``key``; 404 otherwise."""
        from fastapi import HTTPException

        layer, sep, channel = neuron_id.rpartition(":")
        if not sep or not is_index(channel):
            raise HTTPException(404, f"{short(neuron_id, 40)} is not a neuron id; use "
                                     "layer:channel, e.g. mixed4a:12")
        try:
            return graph.node(f"{layer}:{int(channel)}")
        except KeyError:
            raise HTTPException(404, f"neuron {short(neuron_id, 40)} is not a node of "
                                     f"analysis {key}") from None

    def picture_path(self, graph: Graph, node: Node, kind: Kind) -> Path:
        """The workspace's picture if it has one, else the cache's (which may not exist)."""
        return picture_file(self.picture_roots, graph, node, kind)

    def picture_urls(self, key: str, graph: Graph, kind: Kind) -> dict[str, str]:
        return {n.id: f"/graphs/{key}/nodes/{n.id}/{kind}.png" for n in graph.nodes
                if self.picture_path(graph, n, kind).is_file()}

    def saved(self) -> list[SavedAnalysis]:
        """The workspace's analyses that can be read, for the page's list."""
        from fastapi import HTTPException

        rows = []
        for key in self.ws.keys():
            try:
                g, _ = self.graph_entry(key)
                attack = attack_choice(g)  # (an attack the registry lacks: not listed)
            except (HTTPException, MassifError, OSError) as e:  # damaged: not listed
                why = self.clean(str(e.detail if isinstance(e, HTTPException) else e))
                if self._unlisted.get(key) != why:  # once per analysis and reason
                    self._unlisted[key] = why
                    log.warning("not listing analysis %s: %s", key, why)
                continue
            rows.append(SavedAnalysis(
                key=key, benign=g.benign.name, target=g.target.name, attack=attack,
                targeted=g.attack.targeted, max_strength=g.attack.strengths[-1],
                model=g.model.name,
                same_model=g.model.fingerprint == self.engine.model_fingerprint))
        return rows
