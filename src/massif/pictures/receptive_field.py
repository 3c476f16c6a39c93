"""The receptive field of a layer: which input pixels one position of its activation map sees.

Computed, not guessed (step 3 of the dataset examples, ``examples.py``): on a private copy of
the network, max-pooling becomes average pooling over the same window (whose gradient reaches
exactly the max-pool's window), every weight becomes the positive constant ``1/fan_in``, every
bias a small positive number and BatchNorm a positive affine map, so every ReLU (module or
functional) is active. The input-gradient support of one activation position is then exactly
its receptive field: its size comes from a position near the centre (on an input made taller
until that field is not clipped), its stride from the next position, and position ``(i, j)``
covers rows ``[i·stride + offset, i·stride + offset + size)`` (columns alike), clipped to the
image by ``crop_box``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import MassifError, did_you_mean
from ..hooks import ForwardStopped, record, stop_after
from ..models import Model
from ..units import Units


@dataclass(frozen=True)
class ReceptiveField:
    """Position ``(i, j)`` of a layer sees input rows ``[i·stride + offset, … + size)``."""

    size: int
    stride: int
    offset: int


_RF_CACHE: dict[tuple[str, str], ReceptiveField] = {}


def positive_copy(module: nn.Module) -> nn.Module:
    """A float64 CPU copy of ``module`` in which every activation is positive."""
    net = copy.deepcopy(module).cpu().double().eval()
    for _, parent in list(net.named_modules()):
        for attr, sub in list(parent.named_children()):
            if isinstance(sub, nn.MaxPool2d):
                setattr(parent, attr, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding,
                                                   ceil_mode=sub.ceil_mode))
            elif isinstance(sub, nn.AdaptiveMaxPool2d):
                setattr(parent, attr, nn.AdaptiveAvgPool2d(sub.output_size))
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.fill_(1.0 / fan_in)
                if mod.bias is not None:
                    mod.bias.fill_(0.01)
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                if mod.weight is not None:
                    mod.weight.fill_(1.0)
                    mod.bias.fill_(0.01)
                if mod.running_mean is not None:
                    mod.running_mean.zero_()
                    mod.running_var.fill_(1.0)
    return net


def _row_support(net: nn.Module, path: str, height: int, width: int, channels: int,
                 units: Units, noise: bool = False
                 ) -> tuple[int, tuple[int, int], tuple[int, int] | None]:
    """Output height, and the input rows ``[first, last + 1)`` that the gradient of the centre
    output row (then of the row below it, if any) reaches, for a ``height × width`` input of
    ones (or of seeded noise in [0.5, 1.5])."""
    x = (torch.rand(1, channels, height, width, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0)) + 0.5 if noise else
         torch.ones(1, channels, height, width, dtype=torch.float64)).requires_grad_(True)
    with record(net, {"layer": path}, units={"layer": units}) as acts, stop_after(net, path):
        try:
            net(x)
        except ForwardStopped:
            pass
    out = acts["layer"]

    def span(row: int) -> tuple[int, int]:
        (g,) = torch.autograd.grad(out[0, :, row].sum(), x, retain_graph=True)
        hit = torch.nonzero(g.abs().sum((0, 1, 3)) > 0).flatten()
        if not len(hit):
            raise MassifError(f"cannot measure the receptive field of {path}: "
                              "its activation does not depend on the input")
        return int(hit[0]), int(hit[-1]) + 1

    centre = out.shape[2] // 2
    below = span(centre + 1) if centre + 1 < out.shape[2] else None
    return out.shape[2], span(centre), below


def _measure(net: nn.Module, layer: str, path: str, size: int, channels: int, units: Units,
             noise: bool = False) -> tuple[int, tuple[int, int], tuple[int, int] | None]:
    """``_row_support`` on inputs of growing height until the centre row's field is whole."""
    height, found = size, None
    while True:
        try:
            found = _row_support(net, path, height, size, channels, units, noise)
        except MassifError:
            raise
        except Exception as e:  # the model refuses a taller input: keep the last measurement
            if found is None:
                raise MassifError(f"cannot measure the receptive field of {layer}: "
                                  f"{type(e).__name__}: {e}") from None
            break
        (top, bottom), below = found[1], found[2]
        if (top > 0 and bottom < height) or height >= 16 * size:
            break
        if below is None and height > size:  # still one row on a taller input: global
            break
        height *= 2  # the centre's field is clipped: measure on a taller input
    return found


def receptive_field(model: Model, layer: str) -> ReceptiveField:
    """The receptive field of ``layer`` (a display name), measured as above; cached."""
    if layer not in model.layers:
        raise did_you_mean(layer, model.layer_names, "layer")
    key = (model.fingerprint or str(id(model.module)), layer)
    if key in _RF_CACHE:
        return _RF_CACHE[key]
    units = model.units[layer]
    if not units.spatial:  # tokens: the patch grid (a ViT's patches), else the whole image
        grid = units.patch_grid() if units.layout == "tokens" else None
        side = model.image_size // grid[0] if grid else model.image_size
        return ReceptiveField(size=side, stride=side, offset=0)
    size, path = model.image_size, model.layers[layer]
    try:
        rf = _field(_measure(positive_copy(model.module), layer, path, size, model.channels,
                             units), size, layer)
    except MassifError:
        if units.layout == "channels":
            raise
        # A layer norm over equal channels (a transformer's) is flat on the positive copy:
        # measure the model itself, in float64, on noise
        try:
            net = copy.deepcopy(model.module).cpu().double().eval()
            rf = _field(_measure(net, layer, path, size, model.channels, units, noise=True),
                        size, layer)
        except MassifError:  # windows of attention (Swin's) do not slide: each position's cell
            cell = max(1, size // units.grid[0])
            rf = ReceptiveField(size=cell, stride=cell, offset=0)
    _RF_CACHE[key] = rf
    return rf


def _field(found: tuple[int, tuple[int, int], tuple[int, int] | None], size: int, layer: str
           ) -> ReceptiveField:
    """The receptive field from ``_measure``'s rows."""
    h_out, (top, bottom), below = found
    if below is None:  # one position: it sees the whole image
        return ReceptiveField(size=size, stride=size, offset=0)
    stride = below[0] - top
    if stride <= 0:
        raise MassifError(f"cannot measure the receptive field of {layer}: "
                          "neighbouring positions do not move across the input")
    return ReceptiveField(size=bottom - top, stride=stride, offset=top - h_out // 2 * stride)


def crop_box(rf: ReceptiveField, i: int, j: int, image_size: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of position ``(i, j)``'s receptive field, clipped."""
    top, left = i * rf.stride + rf.offset, j * rf.stride + rf.offset

    def clip(v: int) -> int:
        return min(max(v, 0), image_size)

    return clip(top), clip(left), clip(top + rf.size), clip(left + rf.size)
