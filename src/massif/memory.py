"""The batch size that keeps a run within memory, for any model, image size and device.

The analysis keeps one batch's forward pass in the autograd graph at a time (activations saved
for the backward passes), plus that batch's images at every strength. So the memory a batch
needs grows with the batch size and not with the class size: ``auto_batch_size`` measures one
image's activations (a no-grad forward pass with hooks on every leaf module, on the module's
device), and
divides a budget by what one image costs:

    per image = 4 × (its leaf modules' outputs) + (strengths + 3) × (its input)

The factor 4 is measured: googlenet at 224 px on the CPU grows by 121 MB of peak memory per
image of the batch (--batch-size 4 against 16), and its leaf modules output 30 MB per image
(the autograd graph's saved tensors, the gradients of every analysed layer at once, and the
CPU convolutions' work buffers). The budget is ``$MASSIF_MEMORY_BUDGET`` (in GB) when set; else
1.5 GB on the CPU (googlenet then runs batches of 12 and peaks near 2.3 GB, about 0.8 GB of which
is PyTorch and the model), or on CUDA 60% of the GPU memory free at the start (counting what
PyTorch holds cached but unused as free). An explicit ``--batch-size`` always wins.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .errors import MassifError

CPU_BUDGET_GB = 1.5
GPU_SHARE = 0.6
ACTIVATION_FACTOR = 4.0  # saved tensors, gradients and work buffers (measured, see above)
MAX_BATCH = {"cpu": 256, "cuda": 1024}


def activation_bytes(module: nn.Module, image_shape: tuple[int, ...]) -> int:
    """The bytes of every leaf module's output for one image of ``image_shape`` (C, H, W)."""
    total = 0

    def hook(_m: nn.Module, _inp: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.rand(1, *image_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total


def budget_bytes(device: torch.device) -> int:
    """The memory one batch may use on ``device`` (see the module docstring)."""
    env = os.environ.get("MASSIF_MEMORY_BUDGET")
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise MassifError(f"MASSIF_MEMORY_BUDGET must be a positive number of GB, not "
                              f"{env[:40]!r}")
        return int(gb * 2**30)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # memory this process's caching allocator holds but does not use is free to it too
        # (the driver counts it as taken): a second analysis in the server, or the pictures
        # after an analysis, would be sized on what the first left cached
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free * GPU_SHARE)
    return int(CPU_BUDGET_GB * 2**30)


def release_cached() -> None:
    """Hand the memory PyTorch holds cached on the GPU back (after an allocation failed: a
    server's next request then starts with it free)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def auto_batch_size(module: nn.Module, image_shape: tuple[int, ...], n_strengths: int,
                    device: torch.device) -> int:
    """The largest batch (at most 256 on the CPU, 1024 on CUDA) that fits the budget."""
    input_bytes = 4 * int(torch.tensor(image_shape).prod())
    per_image = (ACTIVATION_FACTOR * activation_bytes(module, image_shape)
                 + (n_strengths + 3) * input_bytes)
    fit = int(budget_bytes(device) // max(per_image, 1))
    return max(1, min(MAX_BATCH.get(device.type, 256), fit))
