"""Analyses computed on demand for ``serve``: one background worker, shared by every browser.

1. A request (benign, target, attack, targeted, maximum strength) is turned into its workspace
   key with ``pipeline.request_key`` before anything runs.
2. If the workspace has the key, it is done. If a job for the key is queued or running, the
   caller gets that job: two browsers asking for the same pair share one computation.
3. Otherwise a job is queued. One daemon thread runs the jobs in order (the model object is
   shared, and hooks on one module must not interleave), calling ``pipeline.analyze`` with a
   progress callback, then ``pictures.ensure_graph_pictures`` (feature visualizations and
   dataset examples the graph's neurons still lack), then saves the graph atomically in the
   workspace, so a graph the page loads has its pictures. The checkpoint folder is the graph's
   folder, so a server killed mid-analysis resumes it when asked again.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import MassifError
from .store import Workspace

AttackName = Literal["fgm", "fgsm", "pgd-l2", "pgd-linf"]
ATTACKS: dict[str, float] = {"fgm": 3.5, "fgsm": 0.1, "pgd-l2": 3.5, "pgd-linf": 0.1}
# Share of the whole run each progress stage stands for (profile: all strengths; edges: one).
STAGE_SPAN = {"profile": (0.0, 0.6), "edges": (0.6, 0.8), "visualize": (0.8, 0.95),
              "examples": (0.95, 1.0)}


class AnalysisRequest(BaseModel):
    """What the control panel asks for. Classes by model output index (or name)."""

    benign: int | str
    target: int | str
    attack: AttackName = "fgm"
    targeted: bool = True
    max_strength: float | None = Field(None, gt=0, le=1e4,
                                       description="default 3.5 for L2, 0.1 for Linf")


class AnalysisStatus(BaseModel):
    """Where an analysis stands: ``done`` (its graph is in the workspace), ``queued``,
    ``running`` (with progress in [0, 1]), ``error`` (with the one-line reason) or ``missing``."""

    key: str
    state: Literal["done", "queued", "running", "error", "missing"]
    progress: float = 0.0
    stage: str | None = None
    error: str | None = None
    graph: str | None = Field(None, description="URL of the graph JSON once done")
    page: str | None = Field(None, description="URL of the page once done")
    job: int | None = Field(None, description="id of the computation (shared by requests)")


@dataclass
class Engine:
    """The model and dataset a server computes with, and the fixed analysis parameters."""

    model: Any
    dataset: Any
    class_names: list[str]
    why_not: str | None  # why new analyses cannot be computed, or None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, model: Any, dataset: Any, *, class_index: str | None = None,
             **options: Any) -> Engine:
        from .datasets import Dataset, load_dataset
        from .models import Model, load_model
        from .pipeline import class_space

        if not isinstance(model, Model):
            model = load_model(model)
        why_not = None
        names = list(model.class_names or [])
        spec = dataset if dataset is not None else model.default_dataset
        if spec is None:
            dataset, why_not = None, (f"model {model.name} has no default dataset; restart "
                                      "the server with --data")
        else:
            if not isinstance(spec, Dataset):
                spec = load_dataset(str(spec), model.image_size, model.channels)
            dataset = spec
            names, _ = class_space(model, dataset, class_index)
        options["class_index"] = class_index
        return cls(model, dataset, names, why_not, options)

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def model_fingerprint(self) -> str:
        return self.model.fingerprint

    @property
    def dataset_name(self) -> str | None:
        return self.dataset.name if self.dataset is not None else None

    def default_request(self) -> AnalysisRequest:
        """Sneaker → Sandal where those classes exist, else the first two classes."""
        lower = [n.lower() for n in self.class_names]
        if "sneaker" in lower and "sandal" in lower:
            b, t = lower.index("sneaker"), lower.index("sandal")
        else:
            b, t = 0, min(1, len(lower) - 1)
        return AnalysisRequest(benign=b, target=t, attack="fgm", max_strength=ATTACKS["fgm"])

    def _args(self, r: AnalysisRequest) -> dict[str, Any]:
        o = self.options
        return dict(benign=r.benign, target=r.target, attack=r.attack, targeted=r.targeted,
                    max_strength=r.max_strength, steps=o.get("steps", 8),
                    nodes_per_layer=o.get("nodes_per_layer", 8),
                    edges_per_node=o.get("edges_per_node", 4),
                    max_images=o.get("max_images"), class_index=o.get("class_index"))

    def key(self, r: AnalysisRequest) -> str:
        from .pipeline import request_key

        if self.why_not:
            raise MassifError(self.why_not)
        return request_key(self.model, self.dataset, **self._args(r))

    def analyze(self, r: AnalysisRequest, progress: Callable[[str, int, int], None],
                resume_dir: Any) -> Any:
        from .pipeline import analyze

        return analyze(self.model, self.dataset, **self._args(r),
                       batch_size=self.options.get("batch_size", 256),
                       device=self.options.get("device", "auto"), progress=progress,
                       resume_dir=resume_dir)

    def pictures(self, graph: Any, progress: Callable[[str, int, int], None] | None = None
                 ) -> None:
        """Feature visualizations and dataset examples for ``graph``'s neurons, made only where
        the cache lacks them (``pictures=False`` turns this off)."""
        from .pictures import DEFAULT_STEPS, ensure_graph_pictures
        from .pipeline import resolve_device

        o = self.options
        if not o.get("pictures", True) or graph.model.fingerprint != self.model_fingerprint:
            return
        home = self.model.device
        self.model.to(resolve_device(o.get("device", "auto")))
        try:
            ensure_graph_pictures(self.model, self.dataset, graph, o.get("cache"),
                                  steps=o.get("picture_steps") or DEFAULT_STEPS,
                                  batch_size=o.get("batch_size", 256), progress=progress)
        finally:
            self.model.to(home)


@dataclass
class Job:
    id: int
    key: str
    request: AnalysisRequest
    state: str = "queued"
    progress: float = 0.0
    stage: str | None = None
    error: str | None = None
    extra_progress: list[Callable[[str, int, int], None]] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """Finds saved analyses, dedupes requests by key, runs new ones on one worker thread."""

    def __init__(self, workspace: Workspace, engine: Engine) -> None:
        self.workspace = workspace
        self.engine = engine
        self.jobs: dict[str, Job] = {}
        self.computed = 0  # computations started (a test checks that requests share them)
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._next_id = 1

    def key_of(self, request: AnalysisRequest) -> str:
        return self.engine.key(request)

    def status(self, key: str) -> AnalysisStatus:
        with self._lock:
            job = self.jobs.get(key)
            if job is not None and job.state in ("queued", "running", "error"):
                return AnalysisStatus(key=key, state=job.state, progress=job.progress,
                                      stage=job.stage, error=job.error, job=job.id)
        try:
            done = self.workspace.has(key)
        except KeyError:
            done = False
        if done:
            return AnalysisStatus(key=key, state="done", progress=1.0,
                                  graph=f"/graphs/{key}.json", page=f"/graphs/{key}",
                                  job=job.id if job else None)
        return AnalysisStatus(key=key, state="missing")

    def submit(self, request: AnalysisRequest,
               progress: Callable[[str, int, int], None] | None = None) -> AnalysisStatus:
        """The status of ``request``'s analysis, starting it if it is neither saved nor under
        way (a failed one is tried again). Bad requests raise ``MassifError``."""
        key = self.key_of(request)
        with self._lock:
            job = self.jobs.get(key)
            busy = job is not None and job.state in ("queued", "running")
            if not busy and not self.workspace.has(key):
                job = Job(id=self._next_id, key=key, request=request)
                if progress:
                    job.extra_progress.append(progress)
                self._next_id += 1
                self.jobs[key] = job
                self._queue.put(job)
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="massif-analyses",
                                                    daemon=True)
                    self._worker.start()
        return self.status(key)

    def wait(self, key: str, timeout: float | None = None) -> AnalysisStatus:
        """Block until the job for ``key`` finishes (or ``timeout`` seconds pass)."""
        job = self.jobs.get(key)
        if job is not None:
            job.finished.wait(timeout)
        return self.status(key)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            with self._lock:
                job.stage = stage
                job.progress = round(lo + (hi - lo) * (done / total if total else 1.0), 4)
            for extra in job.extra_progress:
                extra(stage, done, total)

        with self._lock:
            job.state = "running"
            self.computed += 1
        started = time.perf_counter()
        try:
            graph = self.engine.analyze(job.request, progress,
                                        self.workspace.graph_path(job.key).parent)
            try:
                self.engine.pictures(graph, progress)
            except MassifError as e:  # the graph is still worth showing, with placeholders
                print(f"massif: pictures for {job.key} not made: {e}", file=sys.stderr)
            except Exception:  # a bug in the pictures must not lose the analysis
                traceback.print_exc()
            self.workspace.save(graph, job.key)
            state, error = "done", None
        except MassifError as e:
            state, error = "error", str(e)
        except Exception as e:  # a bug: keep the server alive, tell the page in one line
            traceback.print_exc()
            state, error = "error", f"{type(e).__name__}: {e}"
        with self._lock:
            job.state, job.error, job.progress = state, error, 1.0 if state == "done" else 0.0
            job.stage = f"{time.perf_counter() - started:.1f} s" if state == "done" else None
        job.finished.set()
