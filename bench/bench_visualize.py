"""Feature visualization: our batched render against torch-lucent's one-neuron-per-run render.

    .venv/bin/python bench/bench_visualize.py [--device cpu|cuda] [--steps 256] [--neurons 64]
                                              [--few 8] [--threads N]

All on the bundled model (grayscale 28×28), the same neurons (spread over every layer), the same
step count and the same 28 px model input, interleaved in one run:

* ``massif batched``: ``massif.pictures.visualize.render``, ``--neurons`` neurons in one batch.
* ``massif one at a time``: the same function, one neuron per call (what batching saves).
* ``lucent``: ``lucent.optvis.render.render_vis`` per neuron with its standard recipe (Fourier
  parametrisation, Lucid's transforms, Adam 0.05), ``param.image(28, channels=1)``,
  ``fixed_image_size=28`` and ``preprocess=False`` (the model normalises its own input).

Each line gives neurons per second and, over the ``--few`` neurons that every line renders, the
median channel mean on the final (untransformed) picture, so a speed-up cannot come from doing
less. On a busy machine pass ``--threads 1``: OpenMP threads that wait for a busy core make
every line slow and noisy. The target is a
batched / lucent ratio of at least 10 on a CPU.

torch-lucent is not a MASSIF dependency. To install it without touching torch:

    .venv/bin/python -m pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator
    .venv/bin/python -m pip install ipython   # lucent imports IPython.display at import time

Lucent picks ``cuda`` whenever it is available; ``--device`` must agree with it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import massif
from massif.hooks import frozen, record
from massif.pictures.visualize import parse_neuron, render

INSTALL = ("torch-lucent is not installed; to compare with it run\n"
           "  .venv/bin/python -m pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 "
           "decorator\n  .venv/bin/python -m pip install ipython\n"
           "(measuring MASSIF batched against MASSIF one neuron at a time only)")


def pick_neurons(model: massif.Model, n: int) -> list[str]:
    per_layer = -(-n // len(model.layer_names))
    out = []
    for lay in model.layer_names:
        c = model.layer_channels[lay]
        out += [f"{lay}:{(7 * k + 3) % c}" for k in range(per_layer)]
    return out[:n]


def activations(model: massif.Model, neurons: list[str], images: torch.Tensor) -> list[float]:
    with frozen(model.module), record(model.module, model.layers) as acts, torch.no_grad():
        model.module(images.to(model.device))
    out = []
    for i, nid in enumerate(neurons):
        lay, ch = parse_neuron(model, nid)
        out.append(float(acts[lay][i, ch].mean()))
    return out


def lucent_render(model: massif.Model, neurons: list[str], steps: int) -> torch.Tensor:
    from lucent.optvis import objectives, param
    from lucent.optvis import render as lucent

    net = model.module
    images = []
    for nid in neurons:
        lay, ch = parse_neuron(model, nid)
        before = {m: set(m._forward_hooks) for m in net.modules()}
        try:
            result = lucent.render_vis(
                net, objectives.channel(lay, ch), lambda: param.image(model.image_size,
                                                                      channels=model.channels),
                thresholds=(steps,), preprocess=False, progress=False, show_image=False,
                fixed_image_size=model.image_size)
        finally:  # lucent never removes its hooks; left alone they would pile up run after run
            for m, keys in before.items():
                for key in set(m._forward_hooks) - keys:
                    del m._forward_hooks[key]
        images.append(torch.from_numpy(result[-1]).permute(0, 3, 1, 2))
    return torch.cat(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--neurons", type=int, default=64, help="batched and one-at-a-time runs")
    ap.add_argument("--few", type=int, default=8,
                    help="neurons for the one-per-run lines (lucent, massif one at a time)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = massif.load_model("bundled").to(dev)
    model.module.eval()
    neurons = pick_neurons(model, args.neurons)
    few = neurons[:: max(1, len(neurons) // args.few)][: args.few]
    try:
        import lucent.optvis.render  # noqa: F401
        have_lucent = True
    except ImportError:
        print(INSTALL)
        have_lucent = False

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    render(model, neurons[:2], steps=4)  # warm-up
    rows = []

    def timed(name: str, fn, names: list[str]) -> None:  # noqa: ANN001
        sync()
        t = time.perf_counter()
        images = fn(names)
        sync()
        elapsed = time.perf_counter() - t
        acts = dict(zip(names, activations(model, names, images)))
        rows.append((name, len(names), elapsed, len(names) / elapsed,
                      statistics.median(acts[n] for n in few)))

    timed("massif batched", lambda ns: render(model, ns, steps=args.steps,
                                              batch_size=len(ns)), neurons)
    timed("massif one at a time",
          lambda ns: torch.cat([render(model, [n], steps=args.steps) for n in ns]), few)
    if have_lucent:
        timed("lucent (one per run)", lambda ns: lucent_render(model, ns, args.steps), few)

    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"feature visualization, bundled model (28×28 grayscale), {args.steps} steps, on "
          f"{where}")
    print(f"  {'':<22} {'neurons':>7} {'seconds':>8} {'neurons/s':>10} {'median act':>11}")
    for name, n, sec, rate, act in rows:
        print(f"  {name:<22} {n:>7} {sec:>8.2f} {rate:>10.2f} {act:>11.3f}")
    rate = {name: r for name, _, _, r, _ in rows}
    base = "lucent (one per run)" if have_lucent else "massif one at a time"
    print(f"  ratio massif batched / {base} = {rate['massif batched'] / rate[base]:.1f}"
          + ("  (target >= 10 on CPU)" if have_lucent else ""))
    if have_lucent:
        ratio = rate["massif batched"] / rate["massif one at a time"]
        print(f"  ratio massif batched / massif one at a time = {ratio:.1f}")


if __name__ == "__main__":
    main()
