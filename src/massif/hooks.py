"""Temporary hooks on named layers: record activations, mask channels, freeze a model.

Every helper here is a context manager that removes what it added in ``finally`` and restores the
model's train/eval mode and its parameters' ``requires_grad`` flags, even when the body raises.
Layers are addressed by module path (a name from ``model.named_modules()``).

Pitfall: a module that runs more than once per forward pass (a shared ``nn.ReLU`` or pool) would
be recorded only at its last call; ``models.load_model`` refuses such layers up front.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .errors import MassifError, did_you_mean
from .units import Units


def get_module(model: nn.Module, path: str) -> nn.Module:
    modules = dict(model.named_modules())
    if path not in modules:
        raise did_you_mean(path, [n for n in modules if n], "layer")
    return modules[path]


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside; both restored on exit, module by module (a
    model may hold parts in eval mode while the rest trains)."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


@contextmanager
def record(model: nn.Module, layers: Mapping[str, str],
           parts: dict[str, list[torch.Tensor]] | None = None,
           units: Mapping[str, Units] | None = None,
           ) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (display name → module path) during forward passes.

    Yields a dict that each forward pass fills with ``{name: output}``, as the canonical view
    ``[B, units, *positions]`` of ``units[name]`` (``units.Units.view``; the output itself for
    a convolution map or without ``units``). The tensors stay in the autograd graph, and the
    model goes on from the recorded view, so gradients with respect to them are the model's
    own. With ``parts``, also fills ``parts[name]`` with the outputs of the layer's direct
    children during its latest call (what ``concat_parts`` needs to find the branches an
    inception block concatenates).
    """
    store: dict[str, torch.Tensor] = {}
    handles = []
    units = units or {}
    try:
        for name, path in layers.items():
            module = get_module(model, path)
            u = units.get(name)

            def hook(_m: nn.Module, _inp: object, out: torch.Tensor, name: str = name,
                     u: Units | None = u) -> torch.Tensor | None:
                if u is None or u.layout == "channels":
                    store[name] = out
                    return None
                store[name] = v = u.view(out)
                return u.restore(v)  # the rest of the model reads the view

            handles.append(module.register_forward_hook(hook))
            if parts is None:
                continue
            parts[name] = []

            def start(_m: nn.Module, _inp: object, name: str = name) -> None:
                parts[name] = []  # type: ignore[index]

            def child(_m: nn.Module, _inp: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):  # (a child also run elsewhere: kept apart)
                    parts.setdefault(name, []).append(out)  # type: ignore[union-attr]

            handles.append(module.register_forward_pre_hook(start))
            handles += [c.register_forward_hook(child) for c in module.children()]
        yield store
    finally:
        for h in handles:
            h.remove()


class ForwardStopped(Exception):
    """Raised by ``stop_after``'s hook: the forward pass has computed what was asked of it."""


@contextmanager
def stop_after(model: nn.Module, path: str) -> Iterator[None]:
    """Within the block, a forward pass of ``model`` ends by raising ``ForwardStopped`` as soon
    as the module at ``path`` has run, so the layers after it cost nothing. Enter it after
    ``record`` (hooks run in the order they were added, so the layer's output is recorded
    first) and catch the exception around the call."""

    def stop(_m: nn.Module, _inp: object, _out: object) -> None:
        raise ForwardStopped

    handle = get_module(model, path).register_forward_hook(stop)
    try:
        yield
    finally:
        handle.remove()


def concat_parts(out: torch.Tensor, children: Sequence[torch.Tensor]
                 ) -> list[tuple[int, torch.Tensor]] | None:
    """When ``out`` is ``torch.cat`` of some of ``children`` along the channels, in order (an
    inception block's branches): ``(first channel, tensor)`` for each; else ``None``.

    Found through the autograd graph (the cat's inputs are these tensors' ``grad_fn``), so it
    is exact, never a guess from shapes. A gradient taken from one branch's tensor instead of
    ``out`` is the same number, without the backward passes through the other branches.
    """
    fn = out.grad_fn  # (``_saved_dim``: what autograd keeps of the cat; without it, no match)
    if (fn is None or fn.name() != "CatBackward0"
            or getattr(fn, "_saved_dim", None) not in (1, 1 - out.ndim)):
        return None
    known = [(t.grad_fn, t.output_nr, t) for t in children if t.grad_fn is not None]
    found, offset = [], 0
    for node, nr in fn.next_functions:
        t = next((t for n, o, t in known if n is node and o == nr), None)
        if t is None or t.ndim != out.ndim or t.shape[0] != out.shape[0] \
                or t.shape[2:] != out.shape[2:]:
            return None
        found.append((offset, t))
        offset += t.shape[1]
    return found if offset == out.shape[1] else None


# Autograd nodes that never mix channels: channel ``c`` of their output depends on channel ``c``
# of their first input alone (any other input is a parameter: batch norm's weight and bias).
# (``...Backward1``: the in-place forms.)
_CHANNELWISE = frozenset({
    "ReluBackward0", "ReluBackward1", "HardtanhBackward0", "HardtanhBackward1",
    "LeakyReluBackward0", "LeakyReluBackward1", "EluBackward0", "EluBackward1",
    "SiluBackward0", "GeluBackward0", "HardswishBackward0", "HardsigmoidBackward0",
    "SigmoidBackward0", "TanhBackward0",
    "NativeBatchNormBackward0", "CudnnBatchNormBackward0", "MiopenBatchNormBackward0",
    "NativeBatchNormLegitNoTrainingBackward0",
    "MaxPool2DWithIndicesBackward0", "AvgPool2DBackward0", "AdaptiveAvgPool2DBackward0",
    "AdaptiveMaxPool2DBackward0",
})


# Of those, the ones that are also positively homogeneous and piecewise linear (f(λa) = λf(a)):
# for them ``Σ a · ∂(g · f(a))/∂a = g · f(a)`` channel by channel (Euler's theorem).
_HOMOGENEOUS = frozenset({
    "ReluBackward0", "ReluBackward1", "LeakyReluBackward0", "LeakyReluBackward1",
    "MaxPool2DWithIndicesBackward0", "AvgPool2DBackward0", "AdaptiveAvgPool2DBackward0",
    "AdaptiveMaxPool2DBackward0",
})

Edge = tuple[Any, int]  # an autograd node and which of its outputs: a tensor's place in a graph


def edge_of(t: torch.Tensor) -> Edge:
    """``t``'s place in the autograd graph (the node that made it and which output it is)."""
    return (t.grad_fn, t.output_nr)


def conv_behind(edge: Edge, stop: Edge | None = None) -> Any | None:
    """The autograd node of the 2-d convolution whose output channel ``c`` alone makes channel
    ``c`` of the tensor at ``edge``, through steps that never mix channels (activations, batch
    norm, pooling: googlenet's ``BasicConv2d``); ``None`` if there is none, or if the walk back
    reaches ``stop`` first (or the convolution's output is at ``stop``).

    Found through the autograd graph like ``concat_parts``: only a plain convolution (one group,
    not transposed) whose saved input and weight autograd still holds is returned, so a caller can
    take the backward pass through it for a few output channels alone
    (``torch.nn.grad.conv2d_input`` with their filters).
    """
    fn, nr = edge
    while fn is not None and (fn, nr) != stop and fn.name() in _CHANNELWISE:
        fn, nr = fn.next_functions[0]
    if fn is None or (fn, nr) == stop or fn.name() != "ConvolutionBackward0":
        return None
    try:
        plain = (not fn._saved_transposed and fn._saved_groups == 1
                 and fn._saved_weight.ndim == 4 and fn._saved_input.ndim == 4)
    except (AttributeError, RuntimeError):  # not saved, or changed in place since
        return None
    return fn if plain else None


def source_conv(t: torch.Tensor, after: torch.Tensor | None = None) -> Any | None:
    """``conv_behind`` for tensor ``t``, stopping at tensor ``after`` (a tensor that comes
    before ``t``): for layers ``conv1``, ``bn1``, ``bn1``'s channels come from ``conv1``, whose
    output is ``after``, so there is no convolution between them."""
    return conv_behind(edge_of(t), edge_of(after) if after is not None else None)


def homogeneous_path(edge: Edge, to: Edge) -> bool:
    """Is the tensor at ``edge`` made from the tensor at ``to`` by channel-wise, positively
    homogeneous, piecewise linear steps alone (ReLU, max and average pooling; none at all when
    the edges are equal)? Then ``Σ a · ∂s/∂a`` over the tensor ``a`` at ``to`` equals
    ``Σ x · ∂s/∂x`` over the tensor ``x`` at ``edge``, channel by channel, for any ``s`` that
    depends on ``a`` only through ``x``."""
    fn, nr = edge
    while fn is not None and (fn, nr) != to and fn.name() in _HOMOGENEOUS:
        fn, nr = fn.next_functions[0]
    return fn is not None and (fn, nr) == to


@contextmanager
def module_input(model: nn.Module, path: str,
                 store: list[tuple[torch.Tensor, int]]) -> Iterator[None]:
    """During forward passes, keep in ``store`` the one positional input of the module at
    ``path`` (detached) and its version (``store`` holds only the latest call's; nothing when
    the module takes anything else). A caller uses the tensor only while its version is the
    same: an in-place step (the module's own ``ReLU(inplace=True)``) changes it."""

    def hook(_m: nn.Module, args: tuple) -> None:
        store.clear()
        if len(args) == 1 and isinstance(args[0], torch.Tensor):
            store.append((args[0].detach(), args[0]._version))

    handle = get_module(model, path).register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def mask(
    model: nn.Module,
    channels: Mapping[str, Sequence[int]],
    values: Mapping[str, torch.Tensor] | None = None,
    units: Mapping[str, Units] | None = None,
) -> Iterator[None]:
    """Replace the given units of each layer (module path → unit list) during forward.

    By default the units are set to zero at every position (every token, the class token
    included); ``values[path]`` (a ``[units]`` tensor, e.g. the benign mean activation) sets
    them to that value instead. ``units[path]`` says which axis holds them (default: axis 1).
    """
    handles = []
    units = units or {}
    try:
        for path, chans in channels.items():
            module = get_module(model, path)
            chans = sorted(set(int(c) for c in chans))
            if not chans:
                continue
            fill = None if values is None else values.get(path)

            def hook(
                _m: nn.Module, _inp: object, raw: torch.Tensor,
                chans: list[int] = chans, fill: torch.Tensor | None = fill, path: str = path,
                u: Units = units.get(path) or Units(),
            ) -> torch.Tensor:
                out = u.view(raw)  # [B, units, *positions]
                if chans[-1] >= out.shape[1]:
                    raise MassifError(
                        f"layer {path} has {out.shape[1]} channels; cannot mask {chans[-1]}"
                    )
                keep = torch.ones(out.shape[1], device=out.device, dtype=out.dtype)
                keep[chans] = 0
                shape = (1, -1) + (1,) * (out.ndim - 2)
                result = out * keep.view(shape)
                if fill is not None:
                    add = torch.zeros_like(keep)
                    add[chans] = fill.to(out.device, out.dtype)[chans]
                    result = result + add.view(shape)
                return u.restore(result)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def mask_rows(
    model: nn.Module,
    groups: Sequence[Mapping[str, Sequence[int]]],
    values: Sequence[Mapping[str, torch.Tensor] | None] | None = None,
    units: Mapping[str, Units] | None = None,
) -> Iterator[None]:
    """Many masks in one forward pass: the batch is ``len(groups)`` equal blocks of rows, and
    block ``g`` is masked by ``groups[g]`` (module path → channels; ``values[g]`` as in
    ``mask``). Rows of a batch never mix in a forward pass of a model in eval mode, so each
    block gets exactly what ``mask`` with its own group would give."""
    n_groups = len(groups)
    units = units or {}
    paths = list(dict.fromkeys(p for g in groups for p, chans in g.items() if len(chans)))
    handles = []
    try:
        for path in paths:
            module = get_module(model, path)

            def hook(_m: nn.Module, _inp: object, raw: torch.Tensor, path: str = path,
                     u: Units = units.get(path) or Units()) -> torch.Tensor:
                out = u.view(raw)  # [B, units, *positions]
                c = out.shape[1]
                keep = torch.ones(n_groups, c, device=out.device, dtype=out.dtype)
                add = torch.zeros(n_groups, c, device=out.device, dtype=out.dtype)
                for g, group in enumerate(groups):
                    chans = sorted(set(int(ch) for ch in group.get(path, ())))
                    if not chans:
                        continue
                    if chans[-1] >= c:
                        raise MassifError(f"layer {path} has {c} channels; cannot mask "
                                          f"{chans[-1]}")
                    keep[g, chans] = 0
                    fill = None if values is None or values[g] is None else values[g].get(path)
                    if fill is not None:
                        add[g, chans] = fill.to(out.device, out.dtype)[chans]
                rows = out.shape[0] // n_groups
                shape = (n_groups, 1, c) + (1,) * (out.ndim - 2)
                blocks = out.view(n_groups, rows, *out.shape[1:])
                return u.restore((blocks * keep.view(shape) + add.view(shape)).reshape(out.shape))

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def drop_hooks(module: nn.Module) -> None:
    """Remove every hook from ``module`` and its children (used on a fresh deep copy, which
    would otherwise carry along hooks that were on the original when it was copied)."""
    for m in module.modules():
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks", "_forward_hooks_with_kwargs",
                     "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs"):
            d = getattr(m, name, None)
            if d is not None and hasattr(d, "clear"):
                d.clear()


def private_copy(module: nn.Module) -> nn.Module:
    """A deep copy with no hooks, on the CPU, that nothing else holds."""
    net = copy.deepcopy(module)
    drop_hooks(net)
    return net.cpu()
