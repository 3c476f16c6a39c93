"""``analyze``: the whole analysis of one (benign, target, attack) as one call.

Stages: resolve the ``AnalysisRequest`` (model, dataset, classes, attack, strengths) →
``divergence.class_means`` (both classes' clean mean channel maxima) →
``profile.profile_neurons`` (importance and activation of every neuron at every strength, ASR,
where attacked images cross) → ``graph.select`` / ``graph.merged_nodes`` (groups,
vulnerability) → ``profile.profile_edges`` (influence into the graph's nodes, faithfulness) →
``graph.edges`` → a ``schemas.Graph``. A notebook user calls ``massif.analyze``; the CLI and the
server's jobs call ``run``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..distributed import World, local_device
from ..files import as_path, writable_dir
from ..request import AnalysisRequest, Resolved
from ..schemas import (
    BenignRef,
    DatasetRef,
    Divergence,
    Faithfulness,
    Graph,
    Metrics,
    ModelRef,
    TargetRef,
    faithful,
)
from .divergence import class_means, divergence_layer
from .graph import (
    edges,
    layer_nodes,
    merged_nodes,
    node_channels,
    random_masks,
    select,
)
from .profile import profile_edges, profile_neurons
from .streaming import Checkpoint, Progress

RANDOM_DRAWS = 5


def analyze(request: AnalysisRequest | Any = "bundled", dataset: Any = None, *,
            progress: Progress | None = None, resume_dir: str | Path | None = None,
            **fields: Any) -> Graph:
    """Analyse how an attack turns ``benign`` images into ``target``; the merged graph.

    Either an ``AnalysisRequest``, or its fields as arguments: ``analyze("bundled",
    benign="Sneaker", target="Sandal", attack="fgm")``, the first two positional arguments being
    the model (``"bundled"``, ``"torchvision:NAME"``, ``"timm:NAME"``, ``"hf:PATH"``,
    ``"file.py:factory"``, a loaded ``Model``
    or an ``nn.Module`` taking [0, 1] images) and the dataset (``"fashion-mnist"``, an
    ImageFolder path, a ``Dataset`` or ``None`` for the model's own); see ``AnalysisRequest``
    for the others (attack, strengths, graph options, ``max_images``, ``class_index``,
    ``batch_size``, ``device``). ``progress(stage, done, total)`` is called as batches finish.

    With ``resume_dir``, running sums are saved there after the first batch and then every few
    seconds, so a killed run of the same request resumes where it stopped; the files are removed
    once the graph is built.

    The model is traced with ``torch.fx`` once (for the faithfulness check's cut), which
    patches torch process-wide for a moment: where other threads run models at the same time,
    call ``run(request.resolve(), fx_graph=None)`` (or with a graph traced beforehand) instead.
    """
    if not isinstance(request, AnalysisRequest):
        request = AnalysisRequest(model=request, data=dataset, **fields)
    elif fields or dataset is not None:
        request = request.replace(**fields, **({"data": dataset} if dataset is not None else {}))
    return run(request.resolve(), progress=progress, resume_dir=resume_dir)


def run(r: Resolved, *, progress: Progress | None = None,
        resume_dir: str | Path | None = None, world: World | None = None,
        fx_graph: Any = "auto") -> Graph:
    """The analysis of a resolved request (see ``analyze``). The model is put on the request's
    device for the run and back where it was afterwards.

    With a ``world`` of several processes (``distributed.start`` under torchrun), every rank
    calls ``run`` with the same request: each profiles its share of the images, the sums are
    added over the ranks, and every rank returns the same graph; only rank 0 touches
    ``resume_dir``.

    ``fx_graph``: the model traced by ``edit.cut.trace`` (or ``None``), for the faithfulness
    check to run the layers before the masked ones once; by default traced here, which patches
    torch process-wide for a moment: a caller with other threads running models passes one.
    """
    world = world or World()
    model, dataset, atk, b, t = r.model, r.dataset, r.attack, r.benign, r.target
    values, names, indices = r.strengths, r.class_names, r.indices
    opts = r.request
    dev = local_device(r.device)
    key = r.key  # the batch size does not matter: a checkpoint covers a prefix of the images
    folder = None  # only rank 0 reads and writes the checkpoints; the others need no folder
    if resume_dir and world.main:
        folder = writable_dir(as_path(resume_dir, "resume_dir"), "resume_dir")
    batch, workers = world.smallest(r.batch_size), opts.workers  # one round size, fits all
    ckpt0 = Checkpoint(folder / f".{r.key}.means.pt" if folder else None, key)
    ckpt1 = Checkpoint(folder / f".{r.key}.profile.pt" if folder else None, key)
    ckpt2: Checkpoint | None = None
    home = model.device
    model.to(dev)
    try:
        targets = r.target_indices
        means = class_means(model, dataset, indices, targets, batch_size=batch,
                            progress=progress, checkpoint=ckpt0, world=world,
                            workers=workers) if targets else None
        prof = profile_neurons(model, dataset, indices, b, t, atk, values, opts.importance,
                               votes_top_k=opts.nodes_per_layer, batch_size=batch,
                               progress=progress, checkpoint=ckpt1, world=world,
                               workers=workers, means=means)
        per_layer = layer_nodes(prof, opts.nodes_per_layer)
        benign_sets, attacked_sets = select(prof, per_layer)
        nodes = merged_nodes(prof, benign_sets, attacked_sets)
        emphasized: dict[str, list[int]] = {}
        for n in nodes:
            if n.group == "emphasized":
                emphasized.setdefault(n.layer, []).append(n.channel)
        draws = random_masks(emphasized, model.layer_channels, RANDOM_DRAWS)
        node_map = node_channels(nodes)
        key2 = f"{key}-{hashlib.sha256(repr((node_map, draws)).encode()).hexdigest()[:8]}"
        ckpt2 = Checkpoint(folder / f".{r.key}.edges.pt" if folder else None, key2)
        infl = profile_edges(model, dataset, indices, b, t, atk, values[-1], node_map,
                             emphasized, draws, batch_size=batch, progress=progress,
                             checkpoint=ckpt2, world=world, workers=workers,
                             fx_graph=fx_graph)
    finally:
        model.to(home)
    if world.main:
        for ckpt in (ckpt0, ckpt1, ckpt2):
            ckpt.clear()
    n_masked = sum(len(v) for v in emphasized.values())
    margins = (infl.margin_unmasked, infl.margin_emphasized, infl.margin_random)
    check = Faithfulness(
        masked_emphasized_asr=infl.masked_emphasized_asr,
        masked_random_asr=infl.masked_random_asr, n_masked=n_masked,
        random_draws=infl.random_draws,
        clean_accuracy_emphasized=infl.clean_accuracy_emphasized,
        clean_accuracy_random=infl.clean_accuracy_random,
        margin_unmasked=margins[0], margin_emphasized=margins[1], margin_random=margins[2],
        faithful=faithful(n_masked, prof.n_correct, margins),
    )
    divergence = None
    if means is not None and prof.crossed is not None:
        divergence = Divergence(crossed=prof.crossed.tolist(), n_images=prof.n_correct,
                                n_target_images=means.n_target)
    narrow = {lay: n for lay, n in per_layer.items() if n < opts.nodes_per_layer}
    params = r.params.model_copy(update={"layer_nodes": narrow or None})
    return Graph(
        model=ModelRef(name=model.name, fingerprint=model.fingerprint),
        dataset=DatasetRef(name=dataset.name, fingerprint=dataset.fingerprint),
        benign=BenignRef(index=b, name=names[b], n_images=len(indices)),
        target=TargetRef(index=t, name=names[t]),
        attack=r.attack_info,
        params=params,
        layers=list(model.layers),
        metrics=Metrics(
            clean_accuracy=prof.clean_accuracy,
            attack_success_rate=prof.attack_success_rate,
            divergence_layer=divergence_layer(prof.layers, divergence.crossed[-1])
            if divergence else None,
            divergence=divergence,
            faithfulness=check,
        ),
        nodes=nodes,
        edges=edges(prof.layers, nodes, infl, opts.edges_per_node),
        warnings=graph_warnings(prof.clean_accuracy, prof.attack_success_rate[-1],
                                prof.n_correct, names[b], values[-1], check,
                                narrow_layers(params.layer_nodes, model.layer_channels,
                                              opts.nodes_per_layer, n_masked)),
    )


MIN_ACCURACY = 0.5  # below this the model hardly knows the benign class
MIN_ASR = 0.1  # below this, at ε_max, the attack hardly succeeds
MIN_CORRECT = 20  # fewer correctly classified images make every rate coarse


def narrow_layers(layer_nodes: dict[str, int] | None, layer_channels: dict[str, int],
                  nodes_per_layer: int, n_emphasized: int) -> str | None:
    """The warning for narrow layers: ``None`` when no layer was narrowed
    (``graph.layer_nodes``, where ``params.layer_nodes`` and the summary say which were), or when
    the narrowed graph still found emphasized neurons; else why it cannot say what the attack
    relies on."""
    if not layer_nodes or n_emphasized:
        return None
    which = ", ".join(f"{lay} ({layer_channels[lay]} units, {n})"
                      for lay, n in layer_nodes.items())
    return (f"no neuron is emphasized: the benign and the attacked graphs took the same neurons "
            f"in every layer, although the narrow ones took a third of their units rather "
            f"than {nodes_per_layer} ({which}); the graph cannot say which neurons carry the "
            "attack, the layers being too narrow to tell them from the class's own (analyse "
            "wider layers, --layers)")


def graph_warnings(clean_accuracy: float, asr_max: float, n_correct: int, benign: str,
                   eps_max: float, faithfulness: Faithfulness | None = None,
                   narrow: str | None = None) -> list[str]:
    """Why a graph may mean little (shown in the summary, ``graph.json`` and on the page).
    ``faithfulness``: the check's numbers; it warns when its verdict is false (the emphasized
    neurons masked lower the attacked images' target margin no more than random ones).
    ``narrow``: ``narrow_layers``'s sentence, when some layer was too narrow for the nodes per
    layer asked for (it then also replaces the advice to ask for more nodes)."""
    out = [narrow] if narrow else []
    if clean_accuracy < MIN_ACCURACY:
        out.append(f"the model classifies only {clean_accuracy:.0%} of the {benign} images "
                   "correctly, so the graphs describe a class it hardly knows (untrained "
                   "weights, or the wrong class index?)")
    if n_correct < MIN_CORRECT:
        out.append(f"only {n_correct} images are classified correctly: the attack success "
                   "rates rest on too few images to trust (use more images of the class)")
    if asr_max < MIN_ASR:
        out.append(f"the attack succeeds on only {asr_max:.0%} of the images at "
                   f"ε = {eps_max:g}: there is little to explain (try a larger "
                   "--max-strength or another attack)")
    elif faithfulness is not None and faithfulness.faithful is False \
            and n_correct >= MIN_CORRECT and faithfulness.margin_drops is not None:
        f = faithfulness
        emph, rnd = f.margin_drops
        out.append(f"masking the {f.n_masked} emphasized neurons lowers the attacked images' "
                   f"target margin by {emph:.2f}, as many random ones by {rnd:.2f}: the graph "
                   "has not found what the attack relies on (ASR "
                   f"{f.masked_emphasized_asr:.0%} at clean accuracy "
                   f"{f.clean_accuracy_emphasized or 0:.0%} against {f.masked_random_asr:.0%} "
                   f"at {f.clean_accuracy_random or 0:.0%}; use more images of the class"
                   + (", or wider layers)" if narrow else ", or more --nodes-per-layer)"))
    return out
