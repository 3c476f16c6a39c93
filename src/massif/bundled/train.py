"""Train the bundled Fashion-MNIST models: ``python -m massif.bundled.train [--robust|--vit]``.

Deterministic (fixed seed, CPU, 2 threads). Writes the state dict atomically to
``src/massif/bundled/fashion_inception.pt`` (or ``--out``) and prints the test accuracy. Recipe:
BatchNorm (folded into the convolutions before saving), AdamW with a one-cycle learning rate,
random crops (pad 2) and horizontal flips; 8 epochs, about 8 minutes on 2 CPU cores.

``--robust`` trains ``bundled-robust`` (``fashion_inception_robust.pt``): the same network and
recipe, adversarially trained (Madry et al. 2018): every batch is replaced by its untargeted
PGD-L2 images (ε = 1.5 on [0, 1] images, 2 steps of 1.25·ε, random start) before the update; 6
epochs. It then prints the clean accuracy and the accuracy under PGD-L2 (10 steps) at ε = 1 and
1.5 on the first 1,000 test images.

``--vit`` trains ``bundled-vit`` (``fashion_vit.pt``, ``bundled/vit.py``): the small vision
transformer, with the same crops and flips, AdamW (weight decay 0.05) with a one-cycle learning
rate; 10 epochs: 64 minutes on 2 CPU cores that other jobs kept busy (load 4 to 7), 87.3% test
accuracy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from massif.bundled.net import FashionInception, fold_batchnorm
from massif.datasets import FashionMNIST

DEFAULT_OUT = Path(__file__).with_name("fashion_inception.pt")
ROBUST_OUT = Path(__file__).with_name("fashion_inception_robust.pt")
VIT_OUT = Path(__file__).with_name("fashion_vit.pt")
ROBUST_EPS = 1.5  # PGD-L2 radius the robust model is trained against


def evaluate(model: torch.nn.Module, data: FashionMNIST, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = list(range(start, min(start + batch_size, len(data))))
            correct += (model(data.load(idx)).argmax(1) == data.labels[idx]).sum().item()
    return correct / len(data)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None]).view(n, 1, 28, 1).expand(n, 1, 28, 32)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(28)[None]).view(n, 1, 1, 28).expand(n, 1, 28, 28)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def robust_accuracy(model: torch.nn.Module, data: FashionMNIST, eps: float, n: int = 1000,
                    batch_size: int = 250) -> float:
    """Accuracy on the first ``n`` test images under untargeted PGD-L2 (10 steps) at ``eps``."""
    from massif.attacks import Attack

    attack = Attack(name="pgd", norm="l2", targeted=False, steps=10)
    model.eval()
    correct = 0
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        x, y = data.load(idx), data.labels[idx]
        adv = attack.pgd(model, x, y, torch.full((len(idx),), eps))
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    return correct / n


def train(epochs: int = 8, batch_size: int = 128, seed: int = 0, out: Path = DEFAULT_OUT,
          robust: bool = False, vit: bool = False) -> float:
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("MASSIF_TRAIN_THREADS", "2")))
    gen = torch.Generator().manual_seed(seed)
    train_set, test_set = FashionMNIST("train"), FashionMNIST("test")
    if vit:
        from massif.bundled.vit import FashionViT

        model = FashionViT()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    else:
        model = FashionInception(batchnorm=True).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps = epochs * ((len(train_set) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    if robust:
        from massif.attacks import Attack

        pgd = Attack(name="pgd", norm="l2", targeted=False, steps=2, step_ratio=2.5,
                     random_start=True)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = augment(train_set.load(idx), gen).contiguous(memory_format=torch.channels_last)
            if robust:  # the batch's PGD images, made with BatchNorm in its evaluation mode
                model.eval()
                x = pgd.pgd(model, x, train_set.labels[idx], torch.full((len(idx),), ROBUST_EPS))
                model.train()
            loss = F.cross_entropy(model(x), train_set.labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, test_set)
        print(f"epoch {epoch + 1}/{epochs}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)",
              flush=True)
    model.eval()
    shipped = model if vit else fold_batchnorm(model)
    acc = evaluate(shipped, test_set)
    state = {k: v.detach().contiguous().clone() for k, v in shipped.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
    os.close(fd)
    torch.save(state, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), test accuracy {acc:.4f} "
          f"({time.time() - t0:.0f} s)")
    for eps in (1.0, ROBUST_EPS):
        print(f"accuracy under PGD-L2 at ε = {eps:g} (10 steps, first 1,000 test images): "
              f"{robust_accuracy(shipped, test_set, eps):.4f}", flush=True)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robust", action="store_true",
                    help="train bundled-robust (PGD-L2 adversarial training)")
    ap.add_argument("--vit", action="store_true", help="train bundled-vit (the small ViT)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="default 8, or 6 with --robust, 10 with --vit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.robust and args.vit:
        ap.error("--robust and --vit: choose one")
    epochs = args.epochs or (6 if args.robust else 10 if args.vit else 8)
    out = args.out or (ROBUST_OUT if args.robust else VIT_OUT if args.vit else DEFAULT_OUT)
    train(epochs=epochs, seed=args.seed, out=out, robust=args.robust, vit=args.vit)


if __name__ == "__main__":
    main()
