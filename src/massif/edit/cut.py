"""Run a model from an analysable layer on: the part before it is cached, not recomputed.

Deleting neurons of layer ``L`` leaves everything computed before ``L`` unchanged, so for images
that do not change (the stored attack, the clean images, the all-class sample) ``edit`` keeps
the activations at a cut before the earliest masked layer and runs only the rest:

1. Trace the model with ``torch.fx``, each analysable layer kept as one call (a leaf).
2. For a cut layer ``P``: the *suffix* is every node computed from ``P``'s output; its inputs
   are ``P``'s output and any other input-dependent value it reads (a skip connection around
   ``P``). The *prefix* graph returns those inputs; the suffix graph takes them and returns
   the logits. Values that do not depend on the input (weights, constants) are recomputed.
   A cut *before* ``P`` (``before=True``) runs ``P`` itself in the suffix too, so a mask on
   ``P`` can use it; the analysis's faithfulness check cuts before the earliest masked layer.
3. Both graphs call the model's own module objects, so hooks on them (``hooks.mask``) fire as
   in the whole model. A mask may use the cut only if all its layers run in the suffix.
4. A cut is used only once ``suffix(prefix(x))`` has been checked to equal ``model(x)`` on a
   few images, leaving the prefix's outputs unchanged (the suffix runs many times on them).
   A model ``torch.fx`` cannot trace (data-dependent control flow, say) simply runs whole
   every time: the cut is an optimisation, never needed for a correct answer.

Thread rule: ``trace`` runs torch.fx's symbolic tracer, which swaps ``nn.Module.__call__`` for
the whole process while it runs, so a forward pass in another thread at that moment breaks.
Trace only where no other thread runs a model: the server traces once at start-up, before it
serves, and hands the graph to every editor (a graph names modules by path, so it fits any copy
of the same architecture). ``cut`` and the modules it builds patch nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import fx, nn


class _LayerTracer(fx.Tracer):
    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


_TRACING = threading.Lock()


def trace(net: nn.Module, paths: list[str]) -> fx.Graph | None:
    """The model's graph with ``paths`` as leaves, or ``None`` if fx cannot trace it (see the
    thread rule in the module docstring)."""
    with _TRACING:
        try:
            return _LayerTracer(set(paths)).trace(net)
        except Exception:  # any tracing failure just means "no cut"
            return None


@dataclass
class Cut:
    """A model split after the layer at module path ``path`` (``before``: just before it)."""

    path: str
    prefix: fx.GraphModule  # images → tuple of boundary tensors
    suffix: fx.GraphModule  # *boundary tensors → logits
    after: frozenset[str]  # analysable layers (module paths) computed in the suffix
    before: bool = False
    # the prefix returns the one positional input of ``path``'s call and nothing else, so a
    # caller that has that input (from a forward hook) can skip the prefix
    only_input: bool = False

    def covers(self, masked: set[str]) -> bool:
        return masked <= self.after


def cut(net: nn.Module, graph: fx.Graph, path: str, layer_paths: list[str],
        before: bool = False) -> Cut | None:
    """Split ``graph`` after the call of ``path`` (step 2), or ``None`` if it cannot be. With
    ``before``, the call of ``path`` runs in the suffix too: the prefix returns its inputs (and
    whatever else the rest reads), so a mask on ``path`` itself can use the cut."""
    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == path]
    if len(calls) != 1:
        return None
    p = calls[0]
    dependent: set[fx.Node] = set()
    suffix: set[fx.Node] = set()
    for n in nodes:  # graph order is topological
        inputs = n.all_input_nodes
        if n.op == "placeholder" or any(a in dependent for a in inputs):
            dependent.add(n)
        if (before and n is p) or any(a is p or a in suffix for a in inputs):
            suffix.add(n)
    output = next(n for n in nodes if n.op == "output")
    if output not in suffix or sum(n.op == "placeholder" for n in nodes) != 1:
        return None
    boundary: list[fx.Node] = []
    for n in nodes:
        if n in suffix:
            for a in n.all_input_nodes:
                if a not in suffix and a in dependent and a not in boundary:
                    boundary.append(a)
    pre, env = fx.Graph(), {}
    for n in nodes:
        if n.op != "output":
            env[n] = pre.node_copy(n, lambda a: env[a])
    pre.output(tuple(env[b] for b in boundary))
    post, env = fx.Graph(), {}
    for i, b in enumerate(boundary):
        env[b] = post.placeholder(f"cut_{i}")
    for n in nodes:
        if n not in env and (n in suffix or n not in dependent):
            env[n] = post.node_copy(n, lambda a: env[a])
    after = frozenset(n.target for n in suffix if n.op == "call_module"
                      and n.target in set(layer_paths))
    try:
        modules = []
        for g in (pre, post):
            gm = fx.GraphModule(net, g)
            gm.graph.eliminate_dead_code()
            gm.recompile()
            modules.append(gm)
    except Exception:  # an unusual graph: no cut
        return None
    only_input = before and boundary == [p.args[0]] and len(p.args) == 1 and not p.kwargs
    return Cut(path, modules[0], modules[1], after, before, only_input)


@torch.no_grad()
def check(cut_: Cut, net: nn.Module, x: torch.Tensor) -> bool:
    """Step 4: does the cut reproduce the model on ``x``, with tensors batched like ``x``, and
    leave the prefix's outputs as they were?"""
    try:  # (``forward``, not a call: fx prints a traceback of any failure of a call)
        parts = cut_.prefix.forward(x)
        if not all(isinstance(t, torch.Tensor) and t.shape[:1] == x.shape[:1] for t in parts):
            return False
        versions = [t._version for t in parts]
        got, want = cut_.suffix.forward(*parts), net(x)
    except Exception:
        return False
    # a suffix that changes its inputs in place (an in-place activation first) would feed the
    # next mask changed values: callers run it many times on the same prefix outputs
    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and [t._version for t in parts] == versions
            and torch.allclose(got, want, rtol=1e-4, atol=1e-5))
