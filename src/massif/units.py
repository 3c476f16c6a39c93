"""A layer's units: which axis of its output holds the neurons, and how one neuron is summarised.

MASSIF's neuron ``layer:unit`` is one feature of a layer's output, seen at every position:

============== ====================== ============ ==================================
layout         the module's output    units        positions
============== ====================== ============ ==================================
``channels``   ``[B, C, H, W]``       C            H × W (a convolution map; also
                                                   ``[B, C, T]``)
``channels_last`` ``[B, H, W, C]``    C            H × W (Swin stages, ConvNeXt's inner
                                                   linear layers)
``tokens``     ``[B, T, D]``          D            T tokens; the first ``prefix`` are not
                                                   patches (a ViT's class token)
============== ====================== ============ ==================================

Every stage works on one **canonical view** ``[B, units, *positions]`` (``Units.view``): the
output itself for ``channels`` (so convolution models run exactly as before), a permuted view
otherwise. ``hooks.record`` hands the stages that view and lets the model go on from it, so
gradients taken at the view are the model's own.

The **summary** ``s`` of a unit (``Units.summary``) is its maximum over positions, for tokens
over the patch tokens only: the class token is no place in the image, and a unit's strongest
patch is what dataset examples show. Sums over positions (importance, influence,
``Units.total``) take every token, the class token included, since a ViT's logits read the
class token alone: leaving it out would drop most of the last blocks' attribution.

The layout is **known, never guessed from sizes** (a 7×7×768 map and a 768×7×7 one have the
same sizes): ``features_axis`` follows the autograd graph back from the output to the operation
that made its features (a convolution, batch norm or pool: axis 1; a linear layer or layer
norm: the last axis), through steps that keep every axis's meaning (activations, sums,
products, dropout) and through permutes and transposes, which move the axis. Where nothing on
the way says, the layout must be given (``--layers NAME@tokens+1``, ``parse_layer``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .errors import MassifError

LAYOUTS = ("channels", "channels_last", "tokens")


@dataclass(frozen=True)
class Units:
    """The units of one layer: ``layout`` (see the module docstring), how many (``count``), the
    non-patch tokens before the patches (``prefix``, tokens only) and the positions' shape
    (``grid``: ``(H, W)``, or ``(T,)`` for tokens)."""

    layout: str = "channels"
    count: int = 0
    prefix: int = 0
    grid: tuple[int, ...] = ()

    def view(self, out: torch.Tensor) -> torch.Tensor:
        """The canonical view ``[B, units, *positions]`` of the module's output."""
        if self.layout == "channels":
            return out
        if self.layout == "channels_last":
            return out.movedim(-1, 1)
        return out.transpose(1, 2)

    def restore(self, v: torch.Tensor) -> torch.Tensor:
        """The module's own layout from the canonical view (``view``'s inverse)."""
        if self.layout == "channels":
            return v
        if self.layout == "channels_last":
            return v.movedim(1, -1)
        return v.transpose(1, 2)

    def patches(self, v: torch.Tensor) -> torch.Tensor:
        """``[B, units, P]``: the canonical view's positions flattened, non-patch tokens left
        out."""
        flat = v.flatten(2)
        return flat[:, :, self.prefix :] if self.prefix else flat

    def summary(self, v: torch.Tensor) -> torch.Tensor:
        """``s``: each unit's maximum over its positions (patch tokens), ``[B, units]``."""
        return self.patches(v).amax(2)

    def mean(self, v: torch.Tensor) -> torch.Tensor:
        """Each unit's mean over its positions (patch tokens), ``[B, units]`` (the feature
        visualization's objective)."""
        return self.patches(v).mean(2)

    def total(self, v: torch.Tensor) -> torch.Tensor:
        """Each unit's sum over every position, class token included, ``[B, units]``."""
        return v.flatten(2).sum(2)

    @property
    def spatial(self) -> bool:
        """Whether positions are rows × columns of a map (receptive fields can be measured)."""
        return self.layout != "tokens" and len(self.grid) == 2

    def patch_grid(self) -> tuple[int, int] | None:
        """``(rows, columns)`` of the patch tokens when they tile a square (a ViT's), else
        ``None``; for maps, their ``grid``."""
        if self.layout != "tokens":
            return (self.grid[0], self.grid[1]) if len(self.grid) == 2 else None
        n = (self.grid[0] if self.grid else 0) - self.prefix
        side = math.isqrt(max(n, 0))
        return (side, side) if n > 0 and side * side == n else None

    def describe(self) -> str:
        extra = f"+{self.prefix}" if self.prefix else ""
        return f"{self.layout}{extra}"


def parse_layer(spec: str) -> tuple[str, str | None, int]:
    """``NAME`` or ``NAME@LAYOUT`` (``channels``, ``channels_last``, ``tokens``, ``tokens+N``:
    ``N`` tokens before the patches) → ``(name, layout or None, prefix)``."""
    name, at, layout = spec.partition("@")
    name = name.strip()
    if not at:
        return name, None, 0
    layout = layout.strip()
    base, plus, extra = layout.partition("+")
    if base not in LAYOUTS or (plus and (base != "tokens" or not extra.isdigit())):
        raise MassifError(f"layer {spec!r}: the layout after @ is one of channels, "
                          "channels_last, tokens or tokens+N (N tokens before the patches, "
                          "e.g. tokens+1 for a class token)")
    return name, base, int(extra) if plus else 0


# Autograd nodes whose output's axes mean what their (first differentiable) input's do.
_SAME_AXES = frozenset({
    "ReluBackward0", "ReluBackward1", "GeluBackward0", "SiluBackward0", "SigmoidBackward0",
    "TanhBackward0", "HardswishBackward0", "HardsigmoidBackward0", "HardtanhBackward0",
    "HardtanhBackward1", "LeakyReluBackward0", "LeakyReluBackward1", "EluBackward0",
    "EluBackward1", "MishBackward0", "SoftplusBackward0", "AddBackward0", "AddBackward1",
    "SubBackward0", "SubBackward1", "MulBackward0", "MulBackward1", "DivBackward0",
    "DivBackward1", "NegBackward0", "CloneBackward0", "ToCopyBackward0",
    "NativeDropoutBackward0", "ContiguousBackward0", "AliasBackward0", "AbsBackward0",
    "ClampBackward1", "ClampMinBackward0", "ClampMaxBackward0", "MaximumBackward0",
    "MinimumBackward0", "PowBackward0", "PowBackward1", "ExpBackward0", "LogBackward0",
    "SqrtBackward0", "RsqrtBackward0", "SoftmaxBackward0", "LogSoftmaxBackward0",
    "ConstantPadNdBackward0", "ReflectionPad2DBackward0", "ReplicationPad2DBackward0",
    "SliceBackward0", "WhereBackward0", "SigmoidBackward1", "LeakyReluBackward1",
})
# Nodes that make their features on axis 1 (convolutions, batch norm, 2-d pooling, a channel cat).
_AXIS_ONE = ("ConvolutionBackward", "NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm",
             "NativeGroupNorm",
             "NativeBatchNormLegitNoTraining", "MaxPool2DWithIndices", "AvgPool2D",
             "AdaptiveAvgPool2D", "AdaptiveMaxPool2D", "MaxPool1DWithIndices", "AvgPool1D")
# Nodes that make their features on the last axis (linear layers, layer norm).
_AXIS_LAST = ("AddmmBackward", "MmBackward", "NativeLayerNormBackward", "LinearBackward",
              "BmmBackward", "MatmulBackward")


def _inputs(fn: Any) -> list[Any]:
    return [f for f, _ in fn.next_functions
            if f is not None and f.name() != "torch::autograd::AccumulateGrad"]


def _saved_ndim(fn: Any) -> int | None:
    for attr in ("_saved_self", "_saved_input"):
        try:
            t = getattr(fn, attr)
        except (AttributeError, RuntimeError):
            continue
        if isinstance(t, torch.Tensor):
            return t.ndim
    return None


def _axis(fn: Any, shape: tuple[int, ...], seen: set | None = None) -> int | None:
    """The features axis (``0 ≤ axis < len(shape)``) of the tensor of ``shape`` that autograd
    node ``fn`` makes, or ``None`` when nothing on the way back says. Each node is asked once
    (``seen``): residual blocks join many paths."""
    seen = set() if seen is None else seen
    ndim = len(shape)
    if fn is None or id(fn) in seen or len(seen) > 10_000:
        return None
    seen.add(id(fn))
    name = fn.name()
    inner = _inputs(fn)
    if name.startswith(_AXIS_ONE):
        return 1 if ndim >= 2 else None
    if name.startswith(_AXIS_LAST):
        return ndim - 1
    if name.startswith("CatBackward"):
        # the parts say: a join along axis 1 is a channel concatenation of convolutions
        # (Inception) as often as a class token put before a ViT's patch tokens
        for f in inner:
            found = _axis(f, shape, seen)
            if found is not None:
                return found
        return None
    if name in _SAME_AXES or name.startswith("Upsample"):  # (resizing keeps every axis)
        for f in inner:
            found = _axis(f, shape, seen)
            if found is not None:
                return found
        return None
    if name.startswith(("MeanBackward", "SumBackward", "AmaxBackward", "AminBackward")) \
            and getattr(fn, "_saved_keepdim", False) and inner:  # a global pool: axes kept
        sizes = tuple(getattr(fn, "_saved_self_sym_sizes", ()) or ())
        return _axis(inner[0], sizes if len(sizes) == ndim else shape, seen)
    if name.startswith("PermuteBackward") and inner:
        dims = [d % ndim for d in fn._saved_dims]  # output axis i is input axis dims[i]
        before = [0] * ndim
        for i, d in enumerate(dims):
            before[d] = shape[i]
        found = _axis(inner[0], tuple(before), seen)
        return dims.index(found) if found is not None else None
    if name.startswith("TransposeBackward") and inner:
        d0, d1 = fn._saved_dim0 % ndim, fn._saved_dim1 % ndim
        before = list(shape)
        before[d0], before[d1] = shape[d1], shape[d0]
        found = _axis(inner[0], tuple(before), seen)
        if found is None:
            return None
        return d1 if found == d0 else d0 if found == d1 else found
    if name.startswith(("ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward")) and inner:
        # a linear layer on [B, ..., D] is a view of a 2-d product: the last axis stays the
        # features when the view keeps it whole
        sizes = tuple(getattr(fn, "_saved_self_sym_sizes", ()) or ())
        if sizes and sizes[-1] == shape[-1] and _axis(inner[0], sizes, seen) == len(sizes) - 1:
            return ndim - 1
    return None


def features_axis(out: torch.Tensor) -> int | None:
    """Which axis of ``out`` (made with autograd recording) holds its features; ``None`` when
    the autograd graph does not say."""
    return _axis(out.grad_fn, tuple(out.shape))


def units_of(out: torch.Tensor, layer: str, given: str | None = None, prefix: int = 0
             ) -> Units:
    """The ``Units`` of ``layer``'s output ``out``: of the ``given`` layout, or as its autograd
    graph says. One clear error when neither says, or when the output has no positions."""
    shape = tuple(out.shape)
    if out.ndim not in (3, 4):
        raise MassifError(f"layer {layer} cannot be analysed: it outputs shape {shape}, not a "
                          "map [B, C, H, W] or [B, H, W, C] or a token sequence [B, T, D]")
    layout, axis = given, features_axis(out)
    if layout is not None and axis is not None:
        where = 1 if layout == "channels" else out.ndim - 1
        if axis != where:
            raise MassifError(f"layer {layer} outputs shape {shape} with its units on axis "
                              f"{axis}, not a {layout} layout (units on axis {where}); leave "
                              "out the @ to take the layout the model shows")
    if layout is None:
        if axis == 1:
            layout = "channels"
        elif axis == out.ndim - 1:
            layout = "channels_last" if out.ndim == 4 else "tokens"
        else:
            raise MassifError(
                f"layer {layer} outputs shape {shape} and nothing says which axis holds its "
                f"units; name its layout: --layers {layer}@channels (units on axis 1), "
                f"{layer}@channels_last (the last axis of a map) or {layer}@tokens+N "
                "(a sequence of tokens, N of them before the patches)")
    if layout == "tokens" and out.ndim != 3:
        raise MassifError(f"layer {layer} outputs shape {shape}; tokens are [B, T, D]")
    if layout == "channels_last" and out.ndim != 4:
        raise MassifError(f"layer {layer} outputs shape {shape}; channels_last is [B, H, W, C]")
    if layout == "tokens":
        if prefix >= shape[1]:
            raise MassifError(f"layer {layer} has {shape[1]} tokens, not more than {prefix} "
                              "before the patches")
        return Units("tokens", shape[2], prefix, (shape[1],))
    if layout == "channels_last":
        return Units("channels_last", shape[3], 0, shape[1:3])
    return Units("channels", shape[1], 0, shape[2:])
