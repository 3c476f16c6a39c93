"""googlenet at 224 px on real images: throughput per pass, peak memory, one process vs torchrun.

    .venv/bin/python bench/bench_scale.py [--images 36] [--data DIR] [--device cpu] [--passes-only]

Without ``--data`` the 1,000 Imagenette images of ``../shared/data`` are unpacked into a
temporary folder (tench → golf ball, ImageNet's class index, random weights: ``--weights
none``, since no pretrained weights can be had offline; the cost of a pass does not depend on
the weights). Three runs, one after the other (nothing else should run meanwhile):

1. ``massif.analyze`` in this process, with the default (memory-sized) batch: images/s of the
   neuron pass and of the edge pass (from the progress callbacks), their ratio, the batch size
   chosen, and this process's peak resident memory. Twice: with the random weights as they are
   (they get almost no image right, so the faithfulness check, which runs only the images the
   model gets right, has almost nothing to do) and with 30 added to the benign class's output
   bias, so every image is classified as it (the check's worst case; trained weights lie
   between). On CUDA also the peak GPU memory PyTorch allocated;
2. ``massif analyze`` in one process with one thread, in one process with the default threads,
   and ``torchrun --standalone --nproc-per-node 2 -m massif analyze`` (gloo, one thread each;
   on CUDA nccl, only where there are two GPUs):
   wall time of each, and whether the two-process graph.json equals the one-thread one
   (largest relative difference of any number; within 1e-6 is required). The comparison is at
   equal threads per process: a different thread count sums a convolution in another order,
   and with random weights many attributions are ~1e-15, all float rounding;
3. feature visualizations at 224 px: ``render`` of ``--viz-neurons`` neurons for
   ``--viz-steps`` steps in memory-sized batches: neuron-steps per second, and what a whole
   graph (136 neurons, 512 steps) would take at that rate.

``--passes-only`` stops after the first step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

import massif
from massif.analysis import run
from massif.pictures.visualize import picture_batch, render

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
MASSIF = str(Path(sys.executable).parent / "massif")


def imagenette(tmp: Path) -> Path:
    with zipfile.ZipFile(SHARED / "imagenette-val224" / "imagenette_val224_100perclass.zip") as z:
        z.extractall(tmp)
    return next(p for p in tmp.rglob("n01440764")).parent


def worst_difference(a: object, b: object) -> float:
    """The largest relative difference between two graph.json trees (inf if they differ in
    shape, ids or any non-number)."""
    if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
        return max((worst_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max((worst_difference(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return float("inf")
        return abs(a - b) / max(abs(a), abs(b), 1e-30)
    return 0.0 if a == b else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=36, help="images of the benign class")
    ap.add_argument("--data", default=None, help="an ImageFolder with ImageNet WordNet ids")
    ap.add_argument("--class-index", default=str(SHARED / "imagenet-labels" /
                                                 "imagenet_class_index.json"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--viz-neurons", type=int, default=12)
    ap.add_argument("--viz-steps", type=int, default=16)
    ap.add_argument("--passes-only", action="store_true",
                    help="only the pass rates (step 1), not torchrun or the visualizations")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="massif-bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or str(imagenette(tmp))
        common = ["analyze", "--model", "torchvision:googlenet", "--weights", "none",
                  "--data", data, "--class-index", args.class_index, "--benign", "tench",
                  "--target", "golf ball", "--max-images", str(args.images), "--no-pictures",
                  "--device", args.device]

        # 1. In this process: per-pass throughput and peak memory.
        cuda = torch.device(args.device).type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model = massif.load_model("torchvision:googlenet", weights="none")
        request = massif.AnalysisRequest(
            model=model, data=data, class_index=args.class_index, benign="tench",
            target="golf ball", max_images=args.images, device=args.device)
        resolved = request.resolve()
        n = len(resolved.indices)
        threads = torch.get_num_threads()
        print(f"googlenet, 224 px, {n} images of tench, 8 strengths, {args.device} "
              f"({threads} threads), batch {resolved.batch_size} (memory-sized)")
        for label in ("random weights", "every image correct"):
            if label == "every image correct":
                with torch.no_grad():  # the fc layer's bias for tench: every image is tench
                    model.module.net.fc.bias[resolved.benign] += 30.0
            seconds, graph = passes(resolved)
            print(f"  {label} (clean accuracy {graph.metrics.clean_accuracy:.0%}):")
            print(f"    neuron pass  {n / seconds['profile']:6.2f} images/s")
            print(f"    edge pass    {n / seconds['edges']:6.2f} images/s")
            print(f"    edge / neuron pass time = {seconds['edges'] / seconds['profile']:.2f}")
        with torch.no_grad():
            model.module.net.fc.bias[resolved.benign] -= 30.0
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"  peak memory of this process: {peak_gb:.2f} GB")
        if cuda:
            print(f"  peak GPU memory (PyTorch's tensors): "
                  f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GB of "
                  f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GB")
        if args.passes_only:
            return

        # 2. One process against two (torchrun, gloo, one thread each).
        # On CUDA the two processes need a GPU each (nccl): with one GPU only the one-process
        # runs are timed, and step 3 reads their graph.
        two = not cuda or torch.cuda.device_count() >= 2
        walls = {}
        for label, cmd, env in (
            ("one process, 1 thread", [MASSIF, *common, "--out", str(tmp / "one")],
             {"OMP_NUM_THREADS": "1"}),
            ("one process, default threads", [MASSIF, *common, "--out", str(tmp / "default")],
             {}),
            *([("torchrun, 2 processes x 1 thread",
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node=2", "--log-dir", str(tmp / "torchrun-logs"), "-m", "massif",
                 *common, "--out", str(tmp / "two")],
                {"OMP_NUM_THREADS": "1"})] if two else []),
        ):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
            walls[label] = time.perf_counter() - t
            print(f"  {label:<34} {walls[label]:7.1f} s wall (model loading included)")
        if two:
            a = json.loads((tmp / "one" / "graph.json").read_text())
            b = json.loads((tmp / "two" / "graph.json").read_text())
            worst = worst_difference(a, b)
            print(f"  graph.json one vs two processes (1 thread each): largest relative "
                  f"difference {worst:.1e} ({'equal' if worst <= 1e-6 else 'DIFFERENT'}; on "
                  "GPUs, TF32 and cuDNN's batch-dependent kernels differ by more)")
        else:
            print("  torchrun, 2 processes: skipped (nccl needs a GPU per process; one here)")

        # 3. Feature visualizations at 224 px.
        neurons = [n.id for n in graph_nodes(tmp / "one")][: args.viz_neurons]
        model = resolved.model.to(args.device)
        batch = picture_batch(model, model.image_size)
        t = time.perf_counter()
        render(model, neurons, steps=args.viz_steps)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        rate = len(neurons) * args.viz_steps / dt
        print(f"  feature visualizations, 224 px: {len(neurons)} neurons x {args.viz_steps} steps "
              f"in batches of {batch}: {rate:.1f} neuron-steps/s = "
              f"{rate / 512:.3f} neurons/s at 512 steps; a 136-neuron graph would take "
              f"{136 * 512 / rate / 60:.0f} min")


def passes(resolved: massif.request.Resolved) -> tuple[dict[str, float], massif.Graph]:
    """Seconds of each pass of one analysis (from the progress callbacks) and its graph."""
    marks: dict[str, list[float]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done == 0 or done == total:
            marks.setdefault(stage, []).append(time.perf_counter())

    graph = run(resolved, progress=progress)
    return {s: t[-1] - t[0] for s, t in marks.items()}, graph


def graph_nodes(folder: Path) -> list:
    return massif.Graph.load(folder / "graph.json").nodes


if __name__ == "__main__":
    main()
