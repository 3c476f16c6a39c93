"""``serve``: the workspace over HTTP, with analyses, edits, defense searches and deletion
curves on demand.

Thread rules (the server runs request threads, one analysis worker and the long jobs' threads:
defense searches and deletion curves, ``edit_jobs.EditJobs``):

1. **Nothing patches torch process-wide while threads run.** The only such call, torch.fx's
   tracer (``edit.cut.trace``), runs once in ``jobs.Engine.load``, before the server serves;
   editors and analyses get that graph.
2. **The live model belongs to the analysis worker.** Only that one thread runs, hooks or moves
   the loaded model (analyses and their pictures, one at a time). Request threads read its
   name, fingerprint and layer table, never its module.
3. **Editors start from a snapshot.** At start-up the engine keeps a private CPU copy of the
   model; every editor deep-copies that copy (which nobody runs) and owns the result.
4. **Locks are per editor.** Edits of one analysis run one at a time under that editor's lock;
   other analyses, the preview editor and status requests never wait for it; a long job (a
   defense search, deletion curves) runs on a fork of the editor (its own model copy) and
   holds no lock while it runs. The
   per-image view (``/graphs/{key}/images``) runs on the editor's copy under the same lock; the
   gallery's thumbnails only read the dataset.
5. **Every long job reports progress and can be cancelled**: ``POST /analyses/{key}/cancel``,
   ``POST /defenses/{id}/cancel``, ``POST /curves/{id}/cancel``; the job stops at its next
   batch (a feature visualization at its next step; deletion curves before their next mask),
   a queued one at once. (A deletion's checks, ``"checks"`` in an edit, run inside its request
   and are not cancelled with it.)
6. **Files**: written atomically (``files.write_atomic``, which never touches the umask);
   responses are built in memory (no temporary files).
7. **Torch runs only in threads that end with their work** (``massif.threads``): the model is
   loaded in a thread of its own; each request's torch work (edits, images, thumbnails,
   resolving a request's classes) runs in one made for it; the analysis worker ends when its
   queue is empty; each long job has its own thread.
   Every thread that ran torch keeps an OpenMP team while it lives, and idle teams make the
   others' operators wait for sleeping workers (about 1.3× slower on 2 cores).
8. **Logging** goes through ``logging`` (logger ``massif.server``), one line per event; a bug in
   a handler is logged in one line and answered with a JSON 500.
"""

from .app import create_app
from .listen import bind, is_loopback, run

__all__ = ["bind", "create_app", "is_loopback", "run"]
