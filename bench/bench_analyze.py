"""Time a whole default analysis against the bare PyTorch cost of the same work.

    .venv/bin/python bench/bench_analyze.py [--device cpu|cuda] [--repeats 3] [--images N]
                                            [--model bundled|torchvision:googlenet]

Three timings on the same images, interleaved in one run (so a noisy machine hurts all alike):

* ``massif``: ``massif.analyze`` on the bundled model, Sneaker → Sandal (or, with ``--model
  torchvision:googlenet``, random-weight googlenet at 224 px on the Imagenette images of
  ``../shared/data``, tench → golf ball), FGM up to 3.5, 8 strengths (both passes, graph
  building included), at the default (memory-sized) batch unless ``--batch-size`` is given.
* ``bare-same-work``: the same attack gradients, forward passes and backward passes written as
  straight-line PyTorch for these two models, with nothing around them (pass 0: a forward pass
  over both classes' clean images for their mean channel maxima; pass 1: one forward and two
  class backward passes per strength plus the attack gradient; pass 2, on the clean images and
  on the attack at ε_max: for each branch of each inception block one backward pass to its last
  convolution's output, then each node through that convolution with its own filter alone and
  through the branch's 1×1 reduction where there is one, never through a pool; then the six
  masked forward passes, from the first masked layer's input on, on every clean image (the
  faithfulness check's clean accuracy under each mask) and on the attacked images the model
  gets right). These are the exact shortcuts massif's edge pass finds in the autograd graph, so
  ``massif / bare-same-work`` is our overhead; the target is at most 1.15.
* ``bare-attack-only``: just the attack gradient and one forward pass per strength (what
  measuring the ASR alone costs), for scale.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd.graph import get_gradient_edge

import massif
from massif.analysis.graph import random_masks
from massif.datasets import FashionMNIST


def bare_same_work(model, images, benign, target, strengths, node_map, masks, batch_size,
                   target_images):
    net, layers = model.module, model.layers
    store = {}
    handles = [net.get_submodule(p).register_forward_hook(
        lambda m, i, o, n=n: store.__setitem__(n, o)) for n, p in layers.items()]
    try:
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()
        names = list(layers)
        units = pass0(net, names, store, torch.cat([images, target_images]), batch_size)
        pass1(net, names, store, units, images, benign, target, strengths, batch_size)
        branches, handles2 = branch_convs(net, layers)
        handles += handles2
        first = next(n for n in names if any(n in m for m in masks))
        kept = {}
        handles.append(net.get_submodule(layers[first]).register_forward_pre_hook(
            lambda m, i: kept.__setitem__("x", i[0])))
        for start in range(0, len(images), batch_size):  # pass 2
            x = images[start : start + batch_size].clone().requires_grad_(True)
            labels = torch.full((len(x),), target, device=x.device)
            z = net(x)
            clean_first = kept["x"].detach()  # the faithfulness check's clean passes start here
            correct = z.argmax(1) == benign
            influence(names, store, branches, node_map)
            (g,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), x)
            unit = -g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
            adv = (x.detach() + strengths[-1] * unit).clamp(0, 1)
            net(adv.clone().requires_grad_(True))
            influence(names, store, branches, node_map)
            with torch.no_grad():  # the masked passes from the first masked layer: every clean
                # image (the clean accuracy under each mask), the attacked ones it got right
                for h in (clean_first, kept["x"].detach()[correct]):
                    if len(h):
                        masked_passes(model, net, layers, first, masks, h)
    finally:
        for h in handles:
            h.remove()


def masked_passes(model, net, layers, first, masks, h):
    """The model under each mask, from the first masked layer's input ``h`` on."""
    for m in masks:
        hooks = []
        for lay, chans in m.items():
            keep = torch.ones(model.layer_channels[lay], device=h.device)
            keep[chans] = 0
            hooks.append(net.get_submodule(layers[lay]).register_forward_hook(
                lambda mod, i, o, k=keep: o * k.view(1, -1, 1, 1)))
        try:
            run_from(net, layers[first], h).argmax(1)
        finally:
            for hd in hooks:
                hd.remove()


def pass0(net, names, store, both, batch_size):
    """Both classes' mean channel maxima."""
    sums = {n: 0.0 for n in names}
    with torch.no_grad():
        for start in range(0, len(both), batch_size):
            net(both[start : start + batch_size])
            for n in names:
                sums[n] = sums[n] + store[n].flatten(2).amax(2).sum(0)
    return [F.normalize(sums[n].float(), dim=0) for n in names]


def pass1(net, names, store, units, images, benign, target, strengths, batch_size):
    """One forward and two class backward passes per strength, and the attack."""
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].clone().requires_grad_(True)
        labels = torch.full((len(x),), target, device=x.device)
        adv = None
        for k, _ in enumerate(strengths):
            xk = x if k == 0 else adv[k - 1].clone().requires_grad_(True)
            z = net(xk)
            acts = [store[n] for n in names]
            gb = torch.autograd.grad(z[:, benign].sum(), acts, retain_graph=True)
            gt = torch.autograd.grad(z[:, target].sum(), acts, retain_graph=True)
            for a, g1, g2, u in zip(acts, gb, gt, units):
                (a * g1).flatten(2).sum(2).clamp_min(0).sum(0)
                (a * g2).flatten(2).sum(2).clamp_min(0).sum(0)
                s = a.detach().flatten(2).amax(2)
                s.sum(0)
                F.normalize(s, dim=1) @ u  # the margins' cosines (one mean here)
            if k == 0:
                (g,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), x)
                g = -g
                unit = g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
                eps_t = torch.tensor(strengths[1:], device=x.device).view(-1, 1, 1, 1, 1)
                adv = (x.detach() + eps_t * unit).clamp(0, 1)


def branch_convs(net, layers):
    """Both models' layers concatenate branches, each ``[pool] [reduce conv] conv`` with
    channel-wise steps after each conv. Per layer and branch: a record of the branch's output,
    its last conv's input and the gradient edge of its output, and its reduce conv's input."""
    out, handles = {}, []
    for n, p in list(layers.items())[1:]:
        out[n] = []
        for branch in net.get_submodule(p).children():
            convs = [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)]
            rec = {"conv": convs[-1], "reduce": len(convs) > 1}
            handles.append(branch.register_forward_hook(
                lambda m, i, o, r=rec: r.__setitem__("out", o)))
            handles.append(convs[-1].register_forward_hook(functools.partial(_keep_conv, rec)))
            if rec["reduce"]:
                handles.append(convs[0].register_forward_hook(
                    lambda m, i, o, r=rec: r.__setitem__("base", i[0])))
            out[n].append(rec)
    return out, handles


def _keep_conv(rec, module, inputs, output):
    if output.requires_grad:  # its input, and its output's place in the autograd graph (an
        rec["x"], rec["edge"] = inputs[0], get_gradient_edge(output)  # in-place ReLU follows)


def influence(names, store, branches, node_map):
    """Each node's influence from the layer before: one backward pass per branch to its last
    conv's output, then each node through that conv with its own filter alone, and through the
    reduce conv where there is one; pools on the way are skipped (Euler's identity)."""
    sums = {}
    for prev, lay in zip(names, names[1:]):
        chans = node_map.get(lay, [])
        sums[lay] = {}
        off = 0
        for rec in branches[lay]:
            width = rec["out"].shape[1]
            own = [c - off for c in chans if off <= c < off + width]
            off += width
            if not own:
                continue
            s = rec["out"][:, own].flatten(2).amax(2).sum()
            (at_conv,) = torch.autograd.grad(s, rec["edge"], retain_graph=True)
            conv, x = rec["conv"], rec["x"]
            for c in own:
                g = torch.nn.grad.conv2d_input(x.shape, conv.weight[c : c + 1],
                                               at_conv[:, c : c + 1], conv.stride,
                                               conv.padding, conv.dilation)
                base = x
                if rec["reduce"]:
                    (g,) = torch.autograd.grad(x, rec["base"], g, retain_graph=True)
                    base = rec["base"]
                sums[lay][c + off - width] = (base.detach() * g).flatten(2).sum(2).double().sum(0)
    return sums


def run_from(net, path, h):
    """The model from the module at ``path`` on, given its input (both models run their
    children in order; the head pools and flattens)."""
    parent, _, name = path.rpartition(".")
    parent_module = net.get_submodule(parent) if parent else net
    started = False
    for n, m in parent_module.named_children():
        started = started or n == name
        if not started or n.startswith("aux"):
            continue
        if n in ("dropout", "fc") and h.ndim == 4:
            h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        h = m(h)
    return h


def bare_attack_only(model, images, target, strengths, batch_size):
    net = model.module.eval()
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].clone().requires_grad_(True)
        labels = torch.full((len(x),), target, device=x.device)
        (g,) = torch.autograd.grad(F.cross_entropy(net(x), labels, reduction="sum"), x)
        unit = -g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
        with torch.no_grad():
            for eps in strengths[1:]:
                net((x.detach() + eps * unit).clamp(0, 1)).argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=None, help="cap on the class's images")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--model", default="bundled", choices=["bundled", "torchvision:googlenet"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="massif-bench-") as tmp:
        if args.model == "bundled":
            request = massif.AnalysisRequest(
                model=massif.load_model("bundled"), data=FashionMNIST("test"),
                benign="Sneaker", target="Sandal")
        else:
            shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
            with zipfile.ZipFile(shared / "imagenette-val224" /
                                 "imagenette_val224_100perclass.zip") as z:
                z.extractall(tmp)
            request = massif.AnalysisRequest(
                model=massif.load_model(args.model, weights="none"),
                data=str(next(Path(tmp).rglob("n01440764")).parent),
                class_index=str(shared / "imagenet-labels" / "imagenet_class_index.json"),
                benign="tench", target="golf ball")
        request = request.replace(device=dev, max_images=args.images,
                                  batch_size=args.batch_size)
        resolved = request.resolve()
        # loaded once, as the server does; the batch fixed, so massif and bare run the same
        request = request.replace(data=resolved.dataset, batch_size=resolved.batch_size)
        measure(args, dev, request, resolved)


def measure(args, dev, request, resolved) -> None:
    model, benign, target = resolved.model.to(dev), resolved.benign, resolved.target
    batch_size = resolved.batch_size
    idx = resolved.indices
    images = resolved.dataset.load(idx).to(dev)
    target_images = resolved.dataset.load(resolved.target_indices).to(dev)
    strengths = [3.5 * i / 7 for i in range(8)]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    graph = massif.analyze(request)  # warm-up
    node_map: dict[str, list[int]] = {}
    emph: dict[str, list[int]] = {}
    for n in graph.nodes:
        node_map.setdefault(n.layer, []).append(n.channel)
        if n.group == "emphasized":
            emph.setdefault(n.layer, []).append(n.channel)
    masks = [emph] + random_masks(emph, model.layer_channels, 5)
    times: dict[str, list[float]] = {"massif": [], "bare-same-work": [], "bare-attack-only": []}
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        massif.analyze(request)
        sync()
        times["massif"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bare_same_work(model, images, benign, target, strengths, node_map, masks, batch_size,
                       target_images)
        sync()
        times["bare-same-work"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bare_attack_only(model, images, target, strengths, batch_size)
        sync()
        times["bare-attack-only"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"{model.name}: {len(idx)} images, 8 strengths, {len(graph.nodes)} nodes, batch "
          f"{batch_size}, on {name}; median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:<18} {v:7.2f} s")
    print(f"  ratio massif / bare-same-work   = {med['massif'] / med['bare-same-work']:.2f}"
          f"  (target <= 1.15)")
    print(f"  ratio massif / bare-attack-only = {med['massif'] / med['bare-attack-only']:.2f}")


if __name__ == "__main__":
    main()
