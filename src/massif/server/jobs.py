"""Long jobs for ``serve``: analyses and defense searches, with progress and cancel.

1. **Engine**: the model and dataset a server computes with, loaded once, and the base
   ``AnalysisRequest`` every new analysis starts from (the page's choice of classes, attack and
   strength is put on top of it, then resolved). At start-up, before any thread runs, it also
   makes a private CPU *snapshot* of the model (editors copy it, never the live model) and traces
   the snapshot with torch.fx once (``edit.cut``: tracing patches torch process-wide, so it is
   done only here).
2. **Analyses** (``JobManager``): a request is turned into its workspace key before anything
   runs. If the workspace has it, it is done; if a job for the key is queued or running, the
   caller gets that job (two browsers share one computation); else a job is queued. One worker
   thread runs analyses in order (the only thread that runs or moves the live model; it ends
   when the queue is empty, see ``massif.threads``, and the next job starts another): it calls
   ``analysis.run`` with a progress callback, makes the pictures the graph's neurons lack, and
   saves the graph atomically. The checkpoint folder is the graph's folder, so a server killed
   mid-analysis resumes it when asked again. ``cancel(key)`` stops a job at its next batch (or
   picture step), a queued one at once. A saved graph that cannot be read (truncated, edited
   by hand, another schema) is ``damaged``, never ``done``; asking for its pair again computes
   it anew and saves it over the damaged one.
3. **Defense searches and deletion curves** (``edit_jobs.EditJobs``, used by ``defense_jobs``
   and ``curves_routes``): each runs on its own thread, on a fork of the analysis's editor (its
   own model copy), so quick edits of the same analysis go on meanwhile; progress and cancel
   like analyses; two at once, of either kind.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..attacks import ATTACKS as REGISTRY
from ..classes import class_space
from ..errors import SERVER_MEMORY_ADVICE, MassifError, out_of_memory
from ..memory import release_cached
from ..request import AnalysisRequest, Resolved
from ..store import Workspace
from .answers import AnalysisStatus, PairChoice

log = logging.getLogger("massif.server")

# The page's attack choices and their default largest strengths: the registry's.
ATTACKS: dict[str, float] = {label: spec.default_max_strength for label, spec in REGISTRY.items()}
# Share of the whole run each progress stage stands for (means: one forward pass of two classes;
# profile: all strengths; edges: one).
STAGE_SPAN = {"means": (0.0, 0.04), "profile": (0.04, 0.6), "edges": (0.6, 0.8),
              "visualize": (0.8, 0.95), "examples": (0.95, 1.0)}


class Cancelled(Exception):
    """Raised from a progress callback when its job was asked to stop."""


@dataclass
class Engine:
    """The model and dataset a server computes with, its base request and fixed options."""

    base: AnalysisRequest | None  # None: new analyses cannot be computed (see why_not)
    model: Any
    dataset: Any
    class_names: list[str]
    why_not: str | None
    snapshot: Any = None  # private CPU copy of the model's module: editors copy this
    fx_graph: Any = None  # the snapshot traced once at start-up (or None)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, base: AnalysisRequest, **options: Any) -> Engine:
        """Load ``base``'s model and dataset (unless given loaded). Without a usable dataset the
        saved analyses are still served, and new ones are refused with the reason."""
        from ..datasets import Dataset, load_dataset
        from ..edit import cut
        from ..hooks import private_copy
        from ..models import Model, load_model

        model = base.model
        if not isinstance(model, Model):
            model = load_model(model, weights=base.weights,
                               layers=list(base.layers) if base.layers else None,
                               image_size=base.image_size)
        spec = base.data if base.data is not None else model.default_dataset
        names: list[str] = list(model.class_names or [])
        dataset, why_not = None, None
        if spec is None:
            why_not = (f"model {model.name} has no default dataset; restart the server with "
                       "--data")
        else:
            dataset = spec if isinstance(spec, Dataset) else load_dataset(
                str(spec), model.image_size, model.channels)
            names, _ = class_space(model, dataset, base.class_index)
        snapshot = private_copy(model.module)
        graph = cut.trace(snapshot, list(model.layers.values()))
        ready = base.replace(model=model, data=dataset) if dataset is not None else None
        return cls(ready, model, dataset, names, why_not, snapshot, graph, dict(options))

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def model_fingerprint(self) -> str:
        return self.model.fingerprint

    @property
    def dataset_name(self) -> str | None:
        return self.dataset.name if self.dataset is not None else None

    def default_choice(self) -> PairChoice:
        """Sneaker → Sandal where those classes exist, else the first two classes."""
        lower = [n.lower() for n in self.class_names]
        if "sneaker" in lower and "sandal" in lower:
            b, t = lower.index("sneaker"), lower.index("sandal")
        else:
            b, t = 0, min(1, len(lower) - 1)
        first = next(iter(ATTACKS))
        return PairChoice(benign=b, target=t, attack=first, max_strength=ATTACKS[first])

    def request(self, choice: PairChoice) -> AnalysisRequest:
        """The base request with the page's choice on top (checked)."""
        if self.base is None:
            raise MassifError(self.why_not or "this server cannot compute new analyses")
        return self.base.replace(benign=choice.benign, target=choice.target,
                                 attack=choice.attack, targeted=choice.targeted,
                                 max_strength=choice.max_strength)

    def resolve(self, choice: PairChoice) -> Resolved:
        """The request for ``choice``, resolved (in a thread of its own: finding a class's
        images scans the labels, which goes parallel on a big dataset; ``massif.threads``)."""
        from ..threads import in_own_thread

        return in_own_thread(lambda: self.request(choice).resolve(), "massif-resolve")

    def editor_net(self) -> Any:
        """A fresh private copy of the start-up snapshot, for one editor to own."""
        from ..hooks import private_copy

        return private_copy(self.snapshot)


@dataclass(kw_only=True)
class JobState:
    """What every long job shares: its state, progress, error, and the two events that ask it
    to stop (``cancel``) and tell it has ended (``finished``)."""

    state: str = "queued"
    progress: float = 0.0
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass(kw_only=True)
class Job(JobState):
    """An analysis."""

    id: int
    key: str
    resolved: Resolved
    stage: str | None = None
    extra_progress: list[Callable[[str, int, int], None]] = field(default_factory=list)


class JobManager:
    """Finds saved analyses, dedupes requests by key, runs new ones on one worker thread.
    ``damage(key)``: why the saved analysis ``key`` cannot be read, ``None`` when it can (or
    is not saved)."""

    def __init__(self, workspace: Workspace, engine: Engine,
                 make_pictures: Callable[[Any, Callable[[str, int, int], None]], None],
                 damage: Callable[[str], str | None] = lambda key: None) -> None:
        self.workspace = workspace
        self.engine = engine
        self.make_pictures = make_pictures
        self.damage = damage
        self.jobs: dict[str, Job] = {}
        self.computed = 0  # computations started (a test checks that requests share them)
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._next_id = 1

    def key_of(self, choice: PairChoice) -> str:
        return self.engine.resolve(choice).key

    def status(self, key: str) -> AnalysisStatus:
        with self._lock:
            job = self.jobs.get(key)
            if job is not None and job.state in ("queued", "running", "error", "cancelled"):
                return AnalysisStatus(key=key, state=job.state, progress=job.progress,
                                      stage=job.stage, error=job.error, job=job.id)
        if self.workspace.has(key):
            why = self.damage(key)
            if why is not None:
                return AnalysisStatus(key=key, state="damaged", error=why,
                                      job=job.id if job else None)
            return AnalysisStatus(key=key, state="done", progress=1.0,
                                  graph=f"/graphs/{key}.json", page=f"/graphs/{key}",
                                  job=job.id if job else None)
        return AnalysisStatus(key=key, state="missing")

    def submit(self, choice: PairChoice,
               progress: Callable[[str, int, int], None] | None = None) -> AnalysisStatus:
        """The status of ``choice``'s analysis, starting it if it is neither saved nor under
        way (a failed or cancelled one is tried again, a damaged one computed anew). Bad
        requests raise ``MassifError``."""
        resolved = self.engine.resolve(choice)
        key = resolved.key
        damaged = self.damage(key) is not None  # (reads the graph: not under the lock)
        with self._lock:
            job = self.jobs.get(key)
            busy = job is not None and job.state in ("queued", "running")
            if not busy and (damaged or not self.workspace.has(key)):
                job = Job(id=self._next_id, key=key, resolved=resolved)
                if progress:
                    job.extra_progress.append(progress)
                self._next_id += 1
                self.jobs[key] = job
                self._queue.put(job)
                if self._worker is None or not self._worker.is_alive():  # ends when idle
                    self._worker = threading.Thread(target=self._work, name="massif-analyses",
                                                    daemon=True)
                    self._worker.start()
        return self.status(key)

    def cancel(self, key: str) -> AnalysisStatus:
        """Ask the job for ``key`` to stop (at its next batch); a queued one is cancelled at
        once, so asking for the pair again starts a new job rather than returning it."""
        with self._lock:
            job = self.jobs.get(key)
            if job is not None and job.state in ("queued", "running"):
                job.cancel.set()
                if job.state == "queued":  # the worker will skip it (``_run``)
                    job.state = "cancelled"
                    job.finished.set()
        return self.status(key)

    def wait(self, key: str, timeout: float | None = None) -> AnalysisStatus:
        """Block until the job for ``key`` finishes (or ``timeout`` seconds pass)."""
        job = self.jobs.get(key)
        if job is not None:
            job.finished.wait(timeout)
        return self.status(key)

    def _work(self) -> None:
        while True:  # ends when the queue is empty, and its OpenMP team with it (threads.py)
            with self._lock:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    if self._worker is threading.current_thread():
                        self._worker = None
                    return
            self._run(job)

    def _run(self, job: Job) -> None:
        from ..analysis import run

        def progress(stage: str, done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled()
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            with self._lock:
                job.stage = stage
                job.progress = round(lo + (hi - lo) * (done / total if total else 1.0), 4)
            for extra in job.extra_progress:
                extra(stage, done, total)

        with self._lock:
            if job.cancel.is_set():
                job.state = "cancelled"
                job.finished.set()
                return
            job.state = "running"
            self.computed += 1
        started = time.perf_counter()
        try:
            graph = run(job.resolved, progress=progress,
                        resume_dir=self.workspace.folder(job.key),
                        fx_graph=self.engine.fx_graph)  # never traced here: rule 1
            try:
                self.make_pictures(graph, progress)
            except (MassifError, OSError) as e:  # the graph is still worth showing
                log.warning("pictures for %s not made: %s", job.key, e)
            except Cancelled:  # the analysis is finished (its checkpoints are gone): keep it
                log.info("pictures for %s cancelled; the analysis is saved", job.key)
            self.workspace.save(graph, job.key)
            state, error = "done", None
        except Cancelled:
            state, error = "cancelled", None
        except MassifError as e:
            state, error = "error", str(e)
        except Exception as e:  # a bug: keep the server alive, tell the page in one line
            state, error = "error", out_of_memory(e, SERVER_MEMORY_ADVICE)
            if error is None:
                log.error("analysis %s failed: %s: %s", job.key, type(e).__name__, e,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                error = f"{type(e).__name__}: {str(e)[:200]}"
        if error is not None and error.startswith("out of "):
            release_cached()  # here, not in the except: its traceback holds the batch
        if state != "done":  # ended after its checkpoints were cleared: no empty folder stays
            with contextlib.suppress(OSError):
                self.workspace.folder(job.key).rmdir()
        with self._lock:
            job.state, job.error = state, error
            job.progress = 1.0 if state == "done" else 0.0
            job.stage = f"{time.perf_counter() - started:.1f} s" if state == "done" else None
        job.finished.set()
