"""Time an analysis of a 224-px torchvision model (ViT-B/16, ResNet-50) against the bare PyTorch
cost of the same passes, and measure its peak memory.

    .venv/bin/python bench/bench_families.py [--model torchvision:vit_b_16|torchvision:resnet50]
                                             [--images 16] [--repeats 3] [--device cpu|cuda]

Random weights (``--weights none``; the ViT's zero-initialised head gets small random weights
so that gradients flow), the Imagenette images of ``../shared/data``, tench → golf ball, FGM up to
3.5, 8 strengths, the model's default layers (ViT: the 12 blocks' MLP units, tokens; ResNet:
``layer1`` … ``layer4``), 8 nodes per layer. Interleaved in one run, so a noisy machine hurts
all alike:

* ``massif``: ``massif.analyze`` (both passes and the graph).
* ``bare-same-work``: the same work as straight-line PyTorch: pass 0 (both classes' mean unit
  maxima), pass 1 (per strength one forward and two class backward passes, and the attack), pass
  2 on the clean and the ε_max images (one backward pass per node to the layer before, the plain
  way: these families have no exact shortcut) and six masked passes on every clean image and
  on the attacked images the model gets right, from the input of the block holding the first
  masked layer on (massif runs from
  the layer itself where its cut allows: a little less work than this reference does).
* peak memory: the largest resident set of a fresh process that loads the model and runs the
  analysis once (``--memory``), against the 3 GB target.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

import massif
from massif.analysis.graph import random_masks

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load(name: str, device: torch.device) -> massif.Model:
    model = massif.load_model(name, weights="none")
    net = model.module.net
    if hasattr(net, "heads"):  # torchvision's ViT starts its head at zero: no gradient flows
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            net.heads.head.weight.copy_(torch.randn(net.heads.head.weight.shape, generator=g)
                                        * 0.02)
    return model.to(device)


def view(out: torch.Tensor) -> torch.Tensor:
    """``[B, units, positions]``: a map's channels, or a token sequence's last axis."""
    return out.flatten(2) if out.ndim == 4 else out.transpose(1, 2)


def summary(out: torch.Tensor, prefix: int) -> torch.Tensor:
    return view(out)[:, :, prefix:].amax(2)


def bare_same_work(model, images, target_images, benign, target, strengths, node_map, masks,
                   batch_size):
    net, layers = model.module, model.layers
    names = list(layers)
    prefix = {n: model.units[n].prefix for n in names}
    store: dict[str, torch.Tensor] = {}
    handles = [net.get_submodule(p).register_forward_hook(
        lambda m, i, o, n=n: store.__setitem__(n, o)) for n, p in layers.items()]
    try:
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()
        sums = {n: 0.0 for n in names}  # pass 0
        both = torch.cat([images, target_images])
        with torch.no_grad():
            for start in range(0, len(both), batch_size):
                net(both[start: start + batch_size])
                for n in names:
                    sums[n] = sums[n] + summary(store[n], prefix[n]).sum(0)
        means = [F.normalize(sums[n].float(), dim=0) for n in names]
        for start in range(0, len(images), batch_size):  # pass 1
            x = images[start: start + batch_size].clone().requires_grad_(True)
            labels = torch.full((len(x),), target, device=x.device)
            adv = None
            for k, _ in enumerate(strengths):
                xk = x if k == 0 else adv[k - 1].clone().requires_grad_(True)
                z = net(xk)
                acts = [store[n] for n in names]
                gb = torch.autograd.grad(z[:, benign].sum(), acts, retain_graph=True)
                gt = torch.autograd.grad(z[:, target].sum(), acts, retain_graph=True)
                for a, g1, g2, u, n in zip(acts, gb, gt, means, names):
                    view(a * g1).sum(2).clamp_min(0).sum(0)
                    view(a * g2).sum(2).clamp_min(0).sum(0)
                    s = summary(a.detach(), prefix[n])
                    s.sum(0)
                    F.normalize(s, dim=1) @ u
                if k == 0:
                    (g,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), x)
                    unit = -g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
                    eps = torch.tensor(strengths[1:], device=x.device).view(-1, 1, 1, 1, 1)
                    adv = (x.detach() + eps * unit).clamp(0, 1)
        first = next(n for n in names if any(n in m for m in masks))
        block = block_of(model, layers[first])
        kept: dict[str, torch.Tensor] = {}
        handles.append(net.get_submodule(block).register_forward_pre_hook(
            lambda m, i: kept.__setitem__("x", i[0])))
        for start in range(0, len(images), batch_size):  # pass 2
            x = images[start: start + batch_size].clone().requires_grad_(True)
            labels = torch.full((len(x),), target, device=x.device)
            z = net(x)
            clean_first = kept["x"].detach()
            correct = z.argmax(1) == benign
            edges(names, store, node_map, prefix)
            (g,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), x)
            unit = -g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
            net((x.detach() + strengths[-1] * unit).clamp(0, 1).requires_grad_(True))
            edges(names, store, node_map, prefix)
            with torch.no_grad():  # every clean image, and the attacked ones it got right
                for h in (clean_first, kept["x"].detach()[correct]):
                    if len(h):
                        masked_passes(model, net, layers, store, masks, block, h)
    finally:
        for h in handles:
            h.remove()


def masked_passes(model, net, layers, store, masks, block, h):
    """The model under each mask, from the input ``h`` of the block holding the first masked
    layer on."""
    for m in masks:
        hooks = []
        for lay, chans in m.items():
            keep = torch.ones(model.layer_channels[lay], device=h.device)
            keep[chans] = 0
            shape = (1, -1, 1, 1) if store[lay].ndim == 4 else (1, 1, -1)
            hooks.append(net.get_submodule(layers[lay]).register_forward_hook(
                lambda mod, i, o, k=keep, s=shape: o * k.view(*s)))
        try:
            run_from(model, block, h).argmax(1)
        finally:
            for hd in hooks:
                hd.remove()


def edges(names, store, node_map, prefix):
    """Each node's influence from the layer before: one backward pass per node."""
    for prev, lay in zip(names, names[1:]):
        a = store[prev]
        s = summary(store[lay], prefix[lay])
        for c in node_map.get(lay, []):
            (g,) = torch.autograd.grad(s[:, c].sum(), a, retain_graph=True)
            view(a.detach() * g).sum(2).double().sum(0)


def block_of(model, path: str) -> str:
    """The top-level block holding ``path``: ``net.encoder.layers.encoder_layer_K`` or
    ``net.layerK``."""
    parts = path.split(".")
    return ".".join(parts[:4]) if parts[1] == "encoder" else ".".join(parts[:2])


def run_from(model, block: str, h: torch.Tensor) -> torch.Tensor:
    net = model.module.net
    if block.startswith("net.encoder"):
        blocks = list(net.encoder.layers.named_children())
        start = [n for n, _ in blocks].index(block.rsplit(".", 1)[1])
        for _, b in blocks[start:]:
            h = b(h)
        return net.heads(net.encoder.ln(h)[:, 0])
    names = ["layer1", "layer2", "layer3", "layer4"]
    for n in names[names.index(block.split(".")[1]):]:
        h = getattr(net, n)(h)
    return net.fc(torch.flatten(net.avgpool(h), 1))


def request_for(args, tmp: str) -> massif.AnalysisRequest:
    with zipfile.ZipFile(SHARED / "imagenette-val224" / "imagenette_val224_100perclass.zip") as z:
        z.extractall(tmp)
    dev = torch.device(args.device)
    return massif.AnalysisRequest(
        model=load(args.model, dev), data=str(next(Path(tmp).rglob("n01440764")).parent),
        class_index=str(SHARED / "imagenet-labels" / "imagenet_class_index.json"),
        benign="tench", target="golf ball", device=dev, max_images=args.images,
        batch_size=args.batch_size)


def memory(args) -> None:
    with tempfile.TemporaryDirectory(prefix="massif-bench-") as tmp:
        request = request_for(args, tmp)
        massif.analyze(request)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="torchvision:vit_b_16",
                    choices=["torchvision:vit_b_16", "torchvision:resnet50"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=16, help="cap on the class's images")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        return memory(args)
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="massif-bench-") as tmp:
        request = request_for(args, tmp)
        resolved = request.resolve()
        request = request.replace(data=resolved.dataset, batch_size=resolved.batch_size)
        model, batch = resolved.model, resolved.batch_size
        images = resolved.dataset.load(resolved.indices).to(dev)
        target_images = resolved.dataset.load(resolved.target_indices).to(dev)
        strengths = [3.5 * i / 7 for i in range(8)]
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        graph = massif.analyze(request)  # warm-up
        node_map: dict[str, list[int]] = {}
        emph: dict[str, list[int]] = {}
        for n in graph.nodes:
            node_map.setdefault(n.layer, []).append(n.channel)
            if n.group == "emphasized":
                emph.setdefault(n.layer, []).append(n.channel)
        masks = [emph] + random_masks(emph, model.layer_channels, 5)
        times: dict[str, list[float]] = {"massif": [], "bare-same-work": []}
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            massif.analyze(request)
            sync()
            times["massif"].append(time.perf_counter() - t)
            t = time.perf_counter()
            bare_same_work(model, images, target_images, resolved.benign, resolved.target,
                           strengths, node_map, masks, batch)
            sync()
            times["bare-same-work"].append(time.perf_counter() - t)
    child = subprocess.run([sys.executable, __file__, "--memory", "--model", args.model,
                            "--images", str(args.images), "--device", args.device,
                            *(["--batch-size", str(args.batch_size)] if args.batch_size
                              else [])], capture_output=True, text=True, check=True)
    peak_gb = int(child.stdout.split()[-1]) / 2**20
    med = {k: statistics.median(v) for k, v in times.items()}
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"{model.name} (random weights), {len(resolved.indices)} images, 8 strengths, "
          f"{len(graph.nodes)} nodes in {len(model.layers)} layers, batch {batch}, on {where}; "
          f"median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:<16} {v:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[k])})")
    print(f"  ratio massif / bare-same-work = {med['massif'] / med['bare-same-work']:.2f}"
          "  (target <= 1.15)")
    print(f"  peak memory of a process analysing once: {peak_gb:.2f} GB  (target <= 3)")


if __name__ == "__main__":
    main()
