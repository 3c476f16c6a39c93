"""Deletion curves and their areas on real models (issue 26, item 6): does MASSIF's ranking of
neurons stop the attack sooner, and at less cost, than the baselines? Not a timing benchmark:
the numbers do not depend on the machine's load.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_curves.py [--images 300]
        [--models bundled,bundled-robust,cifar,bundled-vit] [--json curves-bench.json]

For each model: the analysis of its pair (``massif.analyze``, ``--images`` images of the benign
class and as many of the target), then ``massif evaluate``'s deletion curves on that graph
(``Editor.curves``: the default sizes 1, 2, 4, …, 32 and all emphasized, the six rankings, 10
random draws, seed 0), the transfer ASR at ε_max and both classes' clean accuracy after each
deletion. Prints each model's curves table, then two summary tables (markdown, as in
docs/method.md): the areas under the ASR-against-cost curve, and under the ASR-against-k curve
(lower: the attack falls sooner; random: mean ± standard deviation over the draws).

Models and pairs:

* ``bundled``, ``bundled-robust``, ``bundled-vit``: Fashion-MNIST test split, Sneaker → Sandal,
  FGM (L2) up to 3.5, 8 strengths, 8 nodes per layer (the default pair);
* ``cifar``: the CIFAR-10 tutorial CNN of ``../shared/data`` (``captum-cifar10-cnn``, layers
  ``relu1`` and ``relu2``, 6 and 16 channels: narrow layers, so the graph takes 2 and 5 nodes),
  the CIFAR-10 test JPEGs, cat → dog, FGSM (L∞) up to 0.03, 8 strengths. Skipped, saying so,
  without ``../shared/data``.

About 10 minutes on 2 CPU cores at the default 300 images (the ViT is most of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import massif

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CIFAR_NET = ROOT / "tests" / "helpers" / "fixtures" / "cifar_net.py"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
MODELS = ["bundled", "bundled-robust", "cifar", "bundled-vit"]
RANKINGS = ["vulnerability", "importance-change", "activation-change", "gradient-x-activation",
            "votes", "random"]


def cifar_folder(dest: Path, per_class: int) -> Path:
    """An ImageFolder of the CIFAR-10 test JPEGs: ``per_class`` cats and dogs, one image of
    each other class (the class names must all be there, in the model's output order)."""
    with zipfile.ZipFile(SHARED / "cifar10-jpg" / "cifar10_test_jpg.zip") as z:
        names = z.namelist()
        for c in CIFAR_CLASSES:
            files = sorted(n for n in names if n.startswith(f"test/{c}/") and not n.endswith("/"))
            for n in files[: per_class if c in ("cat", "dog") else 1]:
                target = dest / c / Path(n).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(n))
    return dest


def run_one(name: str, images: int, scratch: Path) -> dict:
    t0 = time.perf_counter()
    if name == "cifar":
        model = massif.load_model(f"{CIFAR_NET}:build",
                                  weights=str(SHARED / "captum-cifar10-cnn" /
                                              "cifar_torchvision.pt"),
                                  layers=["relu1", "relu2"], image_size=32)
        data = str(cifar_folder(scratch / "cifar", images))
        pair = dict(benign="cat", target="dog", attack="fgsm", max_strength=0.03)
    else:
        model, data = massif.load_model(name), None
        pair = dict(benign="Sneaker", target="Sandal", attack="fgm", max_strength=3.5)
    graph = massif.analyze(model, data, max_images=images, device="cpu", **pair)
    analysed = time.perf_counter() - t0
    editor = massif.Editor.from_graph(model, data, graph, device="cpu")
    curves = editor.curves(graph)
    print(f"\n== {name}: {time.perf_counter() - t0:.0f} s (analysis {analysed:.0f} s)")
    for w in graph.warnings:
        print(f"warning: {w}")
    print(curves.table(), flush=True)
    f = graph.metrics.faithfulness
    return {
        "model": name, "pair": f"{graph.benign.name} → {graph.target.name}",
        "attack": f"{graph.attack.name} up to {graph.attack.strengths[-1]:g}",
        "n_images": graph.benign.n_images, "clean_accuracy": graph.metrics.clean_accuracy,
        "asr": graph.metrics.attack_success_rate[-1],
        "n_emphasized": curves.n_emphasized, "k_common": curves.k_common,
        "layer_nodes": graph.params.layer_nodes, "faithful": f.faithful,
        "warnings": graph.warnings, "seconds": round(time.perf_counter() - t0, 1),
        "curves": curves.model_dump(mode="json"),
    }


def area(c: dict, which: str) -> str:
    value = c[f"auc_{which}"]
    if value is None:
        return "—"
    spread = c.get(f"auc_{which}_std")
    return f"{value:.3f} ± {spread:.3f}" if spread is not None else f"{value:.3f}"


def summary(results: list[dict]) -> str:
    head = ("| model (pair, attack, images) | clean acc. | ASR | emphasized | "
            + " | ".join(RANKINGS) + " |")
    rule = "|" + "---|" * (4 + len(RANKINGS))
    lines = []
    for which, title in (("cost", "AUC(cost): mean lowest ASR over every clean-accuracy budget"),
                         ("k", "AUC(k): mean ASR over 0 ≤ k ≤ k_common on a log2(1 + k) axis")):
        lines += [f"\n{title}", "", head, rule]
        for r in results:
            by = {c["ranking"]: c for c in r["curves"]["curves"]}
            cells = [area(by[name], which) if name in by else "—" for name in RANKINGS]
            k = f", k ≤ {r['k_common']}" if which == "k" else ""
            lines.append(f"| {r['model']} ({r['pair']}, {r['attack']}, {r['n_images']}{k}) | "
                         f"{r['clean_accuracy']:.1%} | {r['asr']:.1%} | {r['n_emphasized']} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300,
                    help="images of the benign class (and of the target) per model")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names or args.images < 1:
        ap.error(f"--models: choose from {', '.join(MODELS)}; --images at least 1")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if name == "cifar" and not SHARED.is_dir():
                print(f"\n== cifar: skipped, {SHARED} is missing", file=sys.stderr)
                continue
            results.append(run_one(name, args.images, Path(tmp)))
    print(summary(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
