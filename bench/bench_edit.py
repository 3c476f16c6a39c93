"""Time the ``edit`` stage against the bare PyTorch cost of the same passes.

    .venv/bin/python bench/bench_edit.py [--device cpu|cuda] [--repeats 3] [--images N]
                                         [--budget 5] [--skip-pgd] [--skip-defense]
                                         [--shortlist 8 [all ...]] [--serve]

On the bundled model, Sneaker → Sandal, 8 strengths up to 3.5, the class's 1,000 images and a
1,000-image all-class sample (the page's default), masking ``mixed4a:12, mixed4b:3`` (and
other masks of the same layers, so no call is answered from the Editor's memory):

* ``build``: ``Editor(...)`` (attack the class, the benign means, the unedited numbers);
* ``evaluate``: one ``Editor.evaluate`` (transfer and adaptive); ``evaluate, transfer only``:
  with ``adaptive=False`` (what a page can show first); both after the prefix cache exists;
* ``bare-same-passes``: the same forward and backward passes as ``evaluate`` written as
  straight-line PyTorch on the whole model with a plain masking hook (clean forward + backward
  for the FGM gradient, one forward per strength for the fresh attack and for the stored one,
  one forward over the sample). ``evaluate / bare`` below 1 is the prefix cache's gain;
* the same for PGD (``pgd-l2``, 10 steps; one repeat: it is slow);
* ``defense``: ``Editor.suggest_defense(budget)`` over the nodes of the pair's graph on a fork
  of the editor (as the server runs it): the time to the suggestion (the greedy path measured
  on all images) and to the end (with its baselines), per ``--shortlist`` (the analysis is
  timed separately and not counted);
* ``--serve``: the same defense search over HTTP in a ``massif serve`` process (its own
  temporary workspace, ``--no-pictures``), as the page starts it: the default analysis and the
  editors are made first (not counted), then each search is timed from its ``POST`` to the
  first status that holds the suggestion and to the one that says done, asked every 0.3 s as
  the page asks (asking every 0.1 s made the search itself 25% slower); and a status request
  on a kept-alive connection (median of 20).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import massif
from massif.edit import Editor

MASKS = [["mixed4a:12", "mixed4b:3"], ["mixed4a:13", "mixed4b:4"], ["mixed4a:14", "mixed4b:5"],
         ["mixed4a:15", "mixed4b:6"], ["mixed4a:16", "mixed4b:7"]]


def bare_same_passes(ed: Editor, masks: dict[str, list[int]], pgd: bool) -> None:
    """``Editor.evaluate``'s passes with nothing around them (whole model every time)."""
    net, bs = ed.net, ed.session.batch_size
    handles = []
    for path, chans in masks.items():
        keep = torch.ones(ed.layer_channels[path], device=ed.session.device)
        keep[chans] = 0
        handles.append(net.get_submodule(path).register_forward_hook(
            lambda m, i, o, k=keep: o * k.view(1, -1, 1, 1)))
    try:
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        eps = ed.strengths[1:]
        for s in range(0, len(ed.session.images), bs):
            x = ed.session.images[s : s + bs]
            labels = torch.full((len(x),), ed.target, device=x.device)
            if pgd:
                with torch.no_grad():
                    net(x).argmax(1)
                adv = ed.attack.perturb(net, x, labels, eps)
            else:
                x0 = x.clone().requires_grad_(True)
                z = net(x0)
                z.argmax(1)
                (g,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), x0)
                unit = -g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
                e = torch.tensor(eps, device=x.device).view(-1, 1, 1, 1, 1)
                adv = (x.unsqueeze(0) + e * unit).clamp(0, 1)
            with torch.no_grad():
                for k in range(len(eps)):
                    net(adv[k]).argmax(1)  # fresh attack
                    net(ed.session.stored(k + 1, s, s + len(x))).argmax(1)  # stored attack
        with torch.no_grad():
            for s in range(0, len(ed.session.sample_images), bs):
                net(ed.session.sample_images[s : s + bs]).argmax(1)
    finally:
        for h in handles:
            h.remove()


def timed(f, sync) -> float:
    sync()
    t = time.perf_counter()
    f()
    sync()
    return time.perf_counter() - t


def bench_attack(attack: str, model, data, args, sync, repeats: int) -> dict[str, float]:
    t = time.perf_counter()
    ed = Editor(model, data, benign="Sneaker", target="Sandal", attack=attack,
                max_images=args.images, device=args.device, batch_size=args.batch_size)
    sync()
    out = {"build": time.perf_counter() - t}
    ed.evaluate(MASKS[0], adaptive=False)  # builds the prefix cache at mixed3b
    paths = {p: c for p, c in ed.session.module_paths(ed.parse(MASKS[0])).items()}
    times: dict[str, list[float]] = {"evaluate": [], "evaluate, transfer only": [],
                                     "bare-same-passes": []}
    for r in range(repeats):
        m1, m2 = MASKS[1 + (2 * r) % 4], MASKS[2 + (2 * r) % 4]
        ed.forget()
        times["evaluate"].append(timed(lambda: ed.evaluate(m1), sync))
        times["evaluate, transfer only"].append(
            timed(lambda: ed.evaluate(m2, adaptive=False), sync))
        times["bare-same-passes"].append(
            timed(lambda: bare_same_passes(ed, paths, attack.startswith("pgd")), sync))
    out.update({k: statistics.median(v) for k, v in times.items()})
    out["n_images"] = len(ed.session.images)
    return out


def defense_over_http(budget: int, repeats: int, device: str) -> None:
    """``--serve``: the defense search as the page runs it, in a ``massif serve`` process."""
    import httpx

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="massif-bench-") as tmp:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "massif"), "serve", f"{tmp}/ws", "--port",
             str(port), "--no-pictures", "--device", device, "--cache", f"{tmp}/cache"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"{url}/index.json", timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("massif serve did not start") from None
                    time.sleep(0.2)
            status = httpx.post(f"{url}/analyses", json={"benign": "Sneaker",
                                                         "target": "Sandal"}, timeout=30).json()
            while status["state"] in ("queued", "running") and time.monotonic() < deadline + 300:
                time.sleep(0.5)
                status = httpx.get(f"{url}/analyses/{status['key']}.json", timeout=10).json()
            if status["state"] != "done":
                raise SystemExit(f"the analysis did not finish: {status}")
            key = status["key"]
            httpx.post(f"{url}/graphs/{key}/editor", json={}, timeout=120).raise_for_status()
            first, whole = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                job = httpx.post(f"{url}/graphs/{key}/defense", json={"budget": budget},
                                 timeout=30).json()
                seen = None
                while job["state"] in ("queued", "running"):
                    time.sleep(0.3)  # the page's POLL_MS
                    job = httpx.get(f"{url}/defenses/{job['id']}.json", timeout=10).json()
                    if seen is None and job["result"] is not None:
                        seen = time.perf_counter() - t
                if job["state"] != "done":
                    raise SystemExit(f"the defense search did not finish: {job['error']}")
                whole.append(time.perf_counter() - t)
                first.append(seen if seen is not None else whole[-1])
            print(f"defense over HTTP (massif serve, budget {budget}, default pair): the "
                  f"suggestion after {statistics.median(first):.2f} s "
                  f"({', '.join(f'{v:.1f}' for v in first)}), with its baselines "
                  f"{statistics.median(whole):.2f} s ({', '.join(f'{v:.1f}' for v in whole)})")
            with httpx.Client() as client:  # kept alive, as a browser keeps it
                waits = []
                for _ in range(20):
                    t = time.perf_counter()
                    client.get(f"{url}/defenses/{job['id']}.json", timeout=10)
                    waits.append(time.perf_counter() - t)
            print(f"a status request on a kept-alive connection: "
                  f"{1000 * statistics.median(waits):.1f} ms (median of 20)")
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=None, help="cap on the class's images")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--budget", type=int, default=5, help="defense budget")
    ap.add_argument("--skip-pgd", action="store_true")
    ap.add_argument("--skip-defense", action="store_true")
    ap.add_argument("--serve", action="store_true",
                    help="only the defense search over HTTP in a massif serve process")
    ap.add_argument("--shortlist", nargs="+", default=[8],
                    type=lambda v: v if v == "all" else int(v),
                    help="candidates measured exactly per step (all: the plain greedy search, "
                         "one run); several to compare")
    args = ap.parse_args()
    if args.serve:
        defense_over_http(args.budget, args.repeats, args.device)
        return
    dev = torch.device(args.device)
    model = massif.load_model("bundled")
    data = massif.load_dataset("fashion-mnist", 28, 1)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    results = {"fgm": bench_attack("fgm", model, data, args, sync, args.repeats)}
    if not args.skip_pgd:
        results["pgd-l2"] = bench_attack("pgd-l2", model, data, args, sync, 1)
    for attack, res in results.items():
        print(f"edit, bundled model, Sneaker → Sandal, {attack}, {res['n_images']} images, "
              f"8 strengths, 1000-image sample, on {name}")
        for k in ("build", "evaluate", "evaluate, transfer only", "bare-same-passes"):
            print(f"  {k:<26} {res[k]:8.2f} s")
        ratio = res["evaluate"] / res["bare-same-passes"]
        print(f"  ratio evaluate / bare-same-passes = {ratio:.2f}")
    if not args.skip_defense:
        t = time.perf_counter()
        graph = massif.analyze(model, data, benign="Sneaker", target="Sandal", device=dev,
                               max_images=args.images, batch_size=args.batch_size)
        t_an = time.perf_counter() - t
        ed = Editor.from_graph(model, data, graph, device=dev, batch_size=args.batch_size)
        print(f"defense, budget {args.budget}, {len(graph.nodes)} candidate neurons "
              f"(analysis {t_an:.1f} s, not counted), on a fork of the editor as the server "
              f"runs it; shortlists: {', '.join(map(str, args.shortlist))}")
        for shortlist in args.shortlist:
            first, whole = [], []
            for _ in range(args.repeats if shortlist != "all" else 1):
                fork = ed.fork()
                t = time.perf_counter()
                d = fork.suggest_defense(
                    args.budget, graph=graph, shortlist=None if shortlist == "all" else shortlist,
                    suggested=lambda _r, t=t: first.append(time.perf_counter() - t))
                sync()
                whole.append(time.perf_counter() - t)
            picks = ",".join(d.greedy[-1].mask) if d.greedy else "—"
            print(f"  shortlist {shortlist}: the suggestion after "
                  f"{statistics.median(first):.2f} s, with its baselines "
                  f"{statistics.median(whole):.2f} s (medians of {len(whole)}); picks {picks}")
        print(d.table())


if __name__ == "__main__":
    main()
