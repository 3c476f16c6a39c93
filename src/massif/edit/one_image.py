"""One image's path: what the attack does to a single image of the benign class.

The per-image view of an analysis works on an ``edit.Session`` (the class's images, the attack
stored at every strength and a private copy of the model; ``Editor.gallery`` and
``Editor.image`` are the public verbs, the server's ``/graphs/{key}/images`` routes answer them):

* ``gallery(session, k)``: every image of the class with its clean prediction and its
  prediction once attacked at strength ``ε_k`` (class and probability), whether the model gets
  it right when clean and whether the attack succeeds on it (as the ASR counts it);
* ``image(session, graph, means, i)``: image ``i`` (its position among the class's images): its
  predictions at every strength, the channel maximum of each graph neuron at every strength (so
  the page can show the image's own activations on the graph's nodes), its margins and
  crossing layer at every strength (``analysis.divergence``, against the class means), and its
  pictures: clean, attacked and the perturbation at every strength (the perturbation drawn as
  ``0.5 + δ / (2·max |δ|)`` with one scale for all strengths, so its growth shows).

Everything runs through the session's own model copy, so (as with edits) one thread at a time.
"""

from __future__ import annotations

import base64
import copy
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from ..analysis.divergence import ClassMeans, class_means, crossing, margins
from ..errors import MassifError
from ..hooks import frozen, record
from ..pictures.visualize import to_png
from ..schemas import Graph, Strict

if TYPE_CHECKING:
    from .session import Session


class GalleryItem(Strict):
    position: int = Field(description="the image's place among the class's images (0-based)")
    image: int = Field(description="its index in the dataset")
    clean: int = Field(description="the class predicted on the clean image (model output)")
    clean_p: float = Field(description="the probability of that class")
    attacked: int = Field(description="the class predicted once attacked at the strength")
    attacked_p: float
    correct: bool = Field(description="the clean image is classified as the benign class")
    success: bool = Field(description="correct, and the attack succeeds (the ASR counts it)")


class Gallery(Strict):
    """The benign class's images at one strength (``Editor.gallery``)."""

    strength_index: int
    strength: float
    names: dict[int, str] = Field(description="the names of the classes predicted")
    n_correct: int
    n_success: int
    items: list[GalleryItem]


class Prediction(Strict):
    label: int
    name: str
    p: float = Field(description="the probability of the predicted class")
    p_benign: float
    p_target: float


class ImageDetail(Strict):
    """One image of the class through the attack (``Editor.image``)."""

    position: int
    image: int
    strengths: list[float]
    predictions: list[Prediction] = Field(description="one per strength")
    activations: dict[str, list[float]] = Field(
        description="graph neuron id → its channel maximum on this image at each strength")
    margins: list[list[float]] = Field(
        description="[strength][layer]: cos to the target mean − cos to the benign mean")
    crossing: list[str | None] = Field(
        description="the crossing layer at each strength (all null when the dataset has no "
        "images of the target class: see measured)")
    measured: bool = Field(description="whether margins and crossings were measured")
    perturbation_norm: list[float] = Field(description="|x_k − x| in the attack's norm")
    clean_picture: str = Field(description="PNG data URI")
    attacked_pictures: list[str] = Field(description="PNG data URI per strength")
    perturbation_pictures: list[str] = Field(description="PNG data URI per strength")


def _uri(image: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(to_png(image.cpu(), 96)).decode()


def strength_index(session: Session, k: int | None) -> int:
    big_k = len(session.strengths) - 1
    if k is None:
        return big_k
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= big_k:
        raise MassifError(f"the strength index is a whole number from 0 to {big_k}, not "
                          f"{str(k)[:20]}")
    return k


def attacked_at(session: Session, k: int, s: int, e: int) -> torch.Tensor:
    return session.images[s:e] if k == 0 else session.stored(k, s, e)


def gallery(session: Session, k: int | None = None) -> Gallery:
    """The class's images with their predictions, clean and at ``ε_k`` (default ``ε_max``)."""
    k = strength_index(session, k)
    net, n, bs = session.net, len(session.images), session.batch_size
    items: list[GalleryItem] = []
    with torch.no_grad(), frozen(net):
        for s in range(0, n, bs):
            e = min(s + bs, n)
            clean = net(session.images[s:e]).softmax(1)
            adv = net(attacked_at(session, k, s, e)).softmax(1) if k else clean
            cp, cl = clean.max(1)
            ap, al = adv.max(1)
            correct = cl == session.benign
            hit = (al == session.target) if session.attack.targeted else (al != session.benign)
            # one copy to the CPU per batch (per element, each would wait for the GPU)
            rows = zip(cl.tolist(), cp.tolist(), al.tolist(), ap.tolist(), correct.tolist(),
                       (correct & hit).tolist())
            for j, (c, c_p, a, a_p, ok, won) in enumerate(rows):
                items.append(GalleryItem(
                    position=s + j, image=session.indices[s + j], clean=c, clean_p=c_p,
                    attacked=a, attacked_p=a_p, correct=ok, success=won))
    seen = sorted({i.clean for i in items} | {i.attacked for i in items})
    return Gallery(strength_index=k, strength=session.strengths[k],
                   names={c: session.class_names[c] for c in seen},
                   n_correct=sum(i.correct for i in items),
                   n_success=sum(i.success for i in items), items=items)


def session_means(session: Session) -> ClassMeans:
    """Both classes' clean mean channel maxima (``divergence.class_means``), through the
    session's own model copy."""
    shim = copy.copy(session.model)
    shim.module = session.net
    r = session.resolved
    return class_means(shim, session.dataset, r.indices, r.target_indices,
                       batch_size=session.batch_size)


def image(session: Session, graph: Graph, means: ClassMeans | None, position: int) -> ImageDetail:
    """Image ``position`` of the class through the attack (module docstring)."""
    n = len(session.images)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < n:
        raise MassifError(f"no image {str(position)[:20]} in this analysis: it has {n} images "
                          f"of {session.class_names[session.benign]} (0 to {n - 1})")
    layers = list(graph.layers)  # the graph's, which the crossing is measured over
    unknown = [lay for lay in layers if lay not in session.paths]
    if unknown:
        raise MassifError(f"the analysis's layers ({', '.join(layers)[:200]}) are not all "
                          f"layers of this model ({', '.join(session.paths)[:200]})")
    big_k = len(session.strengths) - 1
    x = session.images[position : position + 1]
    xs = torch.cat([x] + [session.stored(k, position, position + 1) for k in range(1, big_k + 1)])
    paths = {lay: session.paths[lay] for lay in layers}
    with torch.no_grad(), frozen(session.net), \
            record(session.net, paths, units=session.units) as acts:
        probs = session.net(xs).softmax(1)
        maxima = [session.units[lay].summary(acts[lay]) for lay in layers]  # [K+1, units]
    predictions = []
    for row in probs:
        p, label = row.max(0)
        predictions.append(Prediction(label=int(label), name=session.class_names[int(label)],
                                      p=float(p), p_benign=float(row[session.benign]),
                                      p_target=float(row[session.target])))
    where = {lay: i for i, lay in enumerate(layers)}
    activations = {node.id: maxima[where[node.layer]][:, node.channel].tolist()
                   for node in graph.nodes if node.layer in where}
    if means is not None:
        m = margins(maxima, means.directions(xs.device, layers))
        cross = [layers[c] if c < len(layers) else None for c in crossing(m).tolist()]
        margin_rows = m.tolist()
    else:
        cross, margin_rows = [None] * (big_k + 1), []
    delta = (xs - x).flatten(1)
    norms = (delta.abs().amax(1) if session.attack.norm == "linf" else delta.norm(dim=1))
    scale = float(delta.abs().max()) or 1.0
    return ImageDetail(
        position=position, image=session.indices[position], strengths=session.strengths,
        predictions=predictions, activations=activations, margins=margin_rows, crossing=cross,
        measured=means is not None,
        perturbation_norm=norms.tolist(), clean_picture=_uri(x[0]),
        attacked_pictures=[_uri(xk) for xk in xs],
        perturbation_pictures=[_uri(0.5 + (xk - x[0]) / (2 * scale)) for xk in xs])
