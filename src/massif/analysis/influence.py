"""Influence of the previous layer's channels on a graph's nodes: the edge pass's backward passes.

``accumulate_influence`` adds, for every node ``i`` of layer ``l`` and every channel ``j`` of the
layer before, ``Σ_images Σ_positions a_{l-1,j} · ∂s_{l,i}/∂a_{l-1,j}`` (``s``: the channel's
spatial maximum) to running sums: one backward pass per node on CPU, 16 per batched pass on GPU,
each from the node's own branch, through the branch's last convolution with the node's filter
alone, and stopping before a pool on the way back (see ``accumulate_influence``). Every shortcut
is exact and found in the autograd graph (``hooks.concat_parts``, ``hooks.source_conv``,
``hooks.homogeneous_path``); where one does not apply, the plain backward pass runs.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ..hooks import concat_parts, conv_behind, edge_of, homogeneous_path, source_conv
from ..units import Units

_NODE_CHUNK = 16  # nodes whose influence is taken in one batched backward pass


def accumulate_influence(layers: list[str], acts: dict[str, torch.Tensor],
                          nodes: dict[str, list[int]], sums: dict[str, torch.Tensor],
                          parts: dict[str, list[torch.Tensor]] | None = None,
                          batch_nodes: int | None = None,
                          units: dict[str, Units] | None = None) -> None:
    """Add ``Σ_images Σ_positions a_{l-1} · ∂s_{l,i}/∂a_{l-1}`` for every node ``i`` of every
    layer ``l`` to ``sums[l][row of i]``.

    Three shortcuts give the same numbers as one backward pass per node from the layer's
    output:

    - with ``parts`` (``hooks.record``'s), a node of a layer that concatenates branches takes its
      gradient from its own branch's tensor (``hooks.concat_parts``), without the backward
      passes through the other branches (about a third of the cost on googlenet);
    - where the node's channel is one convolution's output channel through steps that never mix
      channels (``hooks.source_conv``: a branch's last conv, batch norm and ReLU), one backward
      pass per branch reaches that convolution's output for all its nodes at once, and each node
      goes through the convolution with its own filter alone, then on to ``a_{l-1}`` (about half
      the remaining cost on googlenet);
    - that way back stops at a pool (or ReLU) between the convolution and ``a_{l-1}``: over such
      channel-wise, homogeneous steps ``Σ a · ∂s/∂a`` is the same sum over their output
      (``_through_conv``; about half the remaining cost again).

    ``batch_nodes``: nodes per backward pass (``is_grads_batched``). By default one on CPU, where
    a loop beats the batched pass 2×, and 16 on GPU. ``acts`` are canonical views
    (``hooks.record`` with ``units``); ``units[l]`` says how a node's ``s`` is taken (default:
    the maximum over every position).
    """
    units = units or {}
    for prev, name in zip(layers, layers[1:]):
        chans = nodes.get(name, [])
        if not chans:
            continue
        a_prev = acts[prev]
        u = units.get(name) or Units()
        chunk = batch_nodes or (_NODE_CHUNK if a_prev.is_cuda else 1)
        split = (concat_parts(acts[name], parts.get(name, [])) if parts else None) \
            or [(0, acts[name])]
        rows_of: dict[int, list[int]] = {}
        for row, ch in enumerate(chans):
            rows_of.setdefault(max(i for i, (o, _) in enumerate(split) if o <= ch), []).append(row)
        for i, rows in rows_of.items():
            off, t = split[i]
            local = [chans[r] - off for r in rows]
            conv, at_conv = _at_source_conv(t, local, a_prev, u)
            for start in range(0, len(rows), chunk):
                some = slice(start, start + chunk)
                if conv is not None:
                    found = _through_conv(conv, at_conv, local[some], a_prev)
                else:
                    g = _from_output(t, local[some], a_prev, u)
                    found = None if g is None else (g, a_prev)
                if found is not None:  # g: [n, B, C', ...]
                    g, base = found
                    contrib = (base.detach().unsqueeze(0) * g).flatten(3).sum(3).double().sum(1)
                    sums[name][torch.tensor(rows[some])] += contrib.cpu()


@functools.cache
def _grad_at_nodes() -> bool:
    """Can this torch take gradients from and at an autograd node (``GradientEdge`` as
    ``autograd.grad``'s outputs and inputs, batched too)? torch 2.4 and later can; tried once on
    a tiny convolution."""
    graph = getattr(torch.autograd, "graph", None)
    edge = getattr(graph, "GradientEdge", None)
    if edge is None or not hasattr(graph, "get_gradient_edge"):
        return False
    try:
        x = torch.ones(1, 1, 3, 3, requires_grad=True)
        y = torch.nn.functional.conv2d(x * 2, torch.ones(1, 1, 1, 1))
        (at_y,) = torch.autograd.grad(y.relu().sum(), edge(y.grad_fn, 0), retain_graph=True)
        node, nr = y.grad_fn.next_functions[0]
        (one,) = torch.autograd.grad(edge(node, nr), x, at_y, retain_graph=True)
        (two,) = torch.autograd.grad(edge(node, nr), x, torch.stack([at_y, at_y]),
                                     is_grads_batched=True)
    except (TypeError, RuntimeError, AttributeError):
        return False
    return bool((one == 2).all() and (two == 2).all())


def _at_source_conv(t: torch.Tensor, chans: list[int], a_prev: torch.Tensor, u: Units
                    ) -> tuple[Any, torch.Tensor | None]:
    """``t``'s source convolution (``hooks.source_conv``) and the gradient of ``Σ_{c ∈ chans}
    s_c`` at its output; channel ``c`` of that gradient is ``∂s_c/∂(its output)``, since no step
    after it mixes channels. ``(None, None)`` where there is no such convolution after
    ``a_prev``, or where this torch cannot take gradients at autograd nodes."""
    conv = source_conv(t, after=a_prev) if _grad_at_nodes() else None
    if conv is None:
        return None, None
    s = u.summary(t[:, chans]).sum()
    (g,) = torch.autograd.grad(s, torch.autograd.graph.GradientEdge(conv, 0), retain_graph=True)
    return conv, g


def _through_conv(conv: Any, at_conv: torch.Tensor, chans: list[int], a_prev: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(g, base)`` with ``Σ_positions base · g[i]`` the influence of ``a_prev`` on channel
    ``chans[i]`` (``g``: ``[n, B, ...]``): through ``conv`` with the filters of ``chans`` alone
    (one grouped transposed convolution), then back towards ``a_prev``.

    The way back stops early where the rest of it is channel-wise and homogeneous
    (``hooks.homogeneous_path``: a max pool between blocks, a branch's pool): there
    ``Σ a_prev · ∂s/∂a_prev = Σ x · ∂s/∂x`` for the tensor ``x`` reached, so ``base`` is ``x``
    and no backward pass goes through the pool. That holds at ``conv``'s input, or at the input
    of the convolution that makes it (a branch's 1×1 reduction)."""
    x, w, n = conv._saved_input, conv._saved_weight, len(chans)
    b, c_in = x.shape[:2]
    g = torch.nn.grad.conv2d_input((b, n * c_in, *x.shape[2:]), w[chans], at_conv[:, chans],
                                   conv._saved_stride, conv._saved_padding,
                                   conv._saved_dilation, n)
    g = g.view(b, n, c_in, *x.shape[2:]).transpose(0, 1)
    at_x = conv.next_functions[0]
    if at_x[0] is None:
        return None
    own = edge_of(a_prev) if a_prev.grad_fn is not None else None
    if own is not None and homogeneous_path(at_x, own):
        return g, x
    edge = torch.autograd.graph.GradientEdge(*at_x)
    reduce = conv_behind(at_x, stop=own) if own is not None else None
    if reduce is not None and homogeneous_path(reduce.next_functions[0], own):
        to, base = torch.autograd.graph.GradientEdge(*reduce.next_functions[0]), \
            reduce._saved_input
    else:
        to, base = a_prev, a_prev
    (out,) = torch.autograd.grad(edge, to, g[0] if n == 1 else g, retain_graph=True,
                                 allow_unused=True, is_grads_batched=n > 1)
    return None if out is None else ((out.unsqueeze(0) if n == 1 else out), base)


def _from_output(t: torch.Tensor, chans: list[int], a_prev: torch.Tensor, u: Units
                 ) -> torch.Tensor | None:
    """``∂s_c/∂a_prev`` for each ``c`` in ``chans`` (``[n, B, ...]``), by backward passes from
    ``t``: a plain one for one channel, a batched one for several."""
    if len(chans) == 1:
        s = u.summary(t[:, chans[:1]])[:, 0]
        (g,) = torch.autograd.grad(s.sum(), a_prev, retain_graph=True, allow_unused=True)
        return None if g is None else g.unsqueeze(0)
    s = u.summary(t)  # [B, units of t]
    onehot = torch.zeros(len(chans), *s.shape, device=s.device, dtype=s.dtype)
    onehot[torch.arange(len(chans)), :, torch.tensor(chans)] = 1
    (g,) = torch.autograd.grad(s, a_prev, onehot, retain_graph=True, is_grads_batched=True,
                               allow_unused=True)
    return g
