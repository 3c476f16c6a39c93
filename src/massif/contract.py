"""The graph JSON contract (``graph.json``, schema_version 1) as pydantic models.

This is a public interface: the browser, notebooks and other tools read it. Change it only by
bumping ``SCHEMA_VERSION`` and documenting the change in ``docs/graph-json.md``. Fields may be
added freely; none may be removed or change meaning within a version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
Group = Literal["suppressed", "shared", "emphasized"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelRef(_Model):
    name: str
    fingerprint: str


class DatasetRef(_Model):
    name: str
    fingerprint: str


class BenignRef(_Model):
    index: int
    name: str
    n_images: int


class TargetRef(_Model):
    index: int
    name: str


class AttackInfo(_Model):
    name: Literal["fgm", "fgsm", "pgd"]
    norm: Literal["l2", "linf"]
    targeted: bool
    strengths: list[float] = Field(description="ε_0 = 0 < ε_1 < … < ε_K, on [0, 1] images")


class Params(_Model):
    importance: Literal["attribution", "votes"] = "attribution"
    nodes_per_layer: int = 8
    edges_per_node: int = 4


class Faithfulness(_Model):
    masked_emphasized_asr: float
    masked_random_asr: float
    n_masked: int = 0
    random_draws: int = 0


class Metrics(_Model):
    clean_accuracy: float
    attack_success_rate: list[float]
    divergence_layer: str | None
    faithfulness: Faithfulness


class Node(_Model):
    id: str
    layer: str
    channel: int
    group: Group
    vulnerability: float | None
    flip_strength: float | None
    importance_benign: list[float]
    importance_target: list[float]
    activation: list[float]


class Edge(_Model):
    source: str
    target: str
    influence_benign: float
    influence_attacked: float


class Graph(_Model):
    """A merged attribution graph; ``Graph.load(path)`` / ``graph.save(path)`` round-trip it."""

    schema_version: int = SCHEMA_VERSION
    model: ModelRef
    dataset: DatasetRef
    benign: BenignRef
    target: TargetRef
    attack: AttackInfo
    params: Params
    layers: list[str]
    metrics: Metrics
    nodes: list[Node]
    edges: list[Edge]

    def node(self, neuron_id: str) -> Node:
        for n in self.nodes:
            if n.id == neuron_id:
                return n
        raise KeyError(neuron_id)

    def nodes_in(self, layer: str, group: Group | None = None) -> list[Node]:
        return [n for n in self.nodes if n.layer == layer and (group is None or n.group == group)]

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file in the same folder, then a rename."""
        return write_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        from .errors import MassifError

        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise MassifError(f"cannot read graph {path}: {e}") from None
        if data.get("schema_version") != SCHEMA_VERSION:
            raise MassifError(
                f"{path} has schema_version {data.get('schema_version')!r}; "
                f"this MASSIF reads {SCHEMA_VERSION}"
            )
        return cls.model_validate(data)

    def summary(self) -> str:
        from .report import summary

        return summary(self)

    def _repr_html_(self) -> str:  # a readable cell in notebooks
        return "<pre>" + self.summary().replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def write_atomic(path: Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
