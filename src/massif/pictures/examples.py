"""Dataset examples: for each neuron, the dataset crops that excite it most.

The algorithm (the "dataset examples" of Olah, Mordvintsev & Schubert 2017, "Feature
Visualization", Distill, and of Summit, Hohman et al. 2019):

1. Score every image for every neuron ``layer:channel`` by ``s = max over positions`` of the
   channel's activation map, and remember the arg-max position ``(i, j)``.
2. Keep, per neuron, the ``k`` best images in ONE streaming pass: each batch's scores are merged
   with the running top-k (ties: lower dataset index first), so memory does not grow with the
   dataset. Forward passes only, under ``torch.no_grad``. A dataset larger than ``images``
   (default 50,000; ImageNet's train split has 1.28 M) is scanned through a seeded,
   class-stratified sample of that many images (``datasets.sample_indices``). Under torchrun
   each process scans its share and rank 0 merges the top-k lists (the merge does not depend on
   the order, so the result is the one-process result).
3. Compute each layer's receptive field (size, stride, offset) instead of guessing it
   (``receptive_field.py``: the input-gradient support of one position on a copy of the
   network whose every activation is positive).
4. Crop each top image to the receptive field around its arg-max position, scale the crops to a
   common display size (nearest-neighbour when enlarging, so small images stay crisp) and write a
   PNG strip per neuron plus an index ``<layer>.json`` (images, values, positions, boxes, and
   the images' class names, so readers without the dataset can name them).

Layout (read by the server): ``cache/examples/<model fp>-<dataset fp>/<layer>/<channel>.png``.

Pitfalls: the receptive field assumes square kernels and strides (rows are measured, columns
taken to match); max-pooling called as a function (``F.max_pool2d``) is not replaced, so its
window would shrink to one pixel; layers that do not behave like convolutions (attention, a
reshape) have no meaningful receptive field. A receptive field larger than the image is shown
as the image-sized window centred on it; the part outside the image is mid-grey.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..datasets import Dataset, sample_indices
from ..distributed import World
from ..errors import MassifError, did_you_mean
from ..files import write_atomic
from ..hooks import frozen, record
from ..models import Model
from ..schemas import ExampleChannel, ExamplesIndex, ReceptiveFieldInfo
from .receptive_field import ReceptiveField, crop_box, receptive_field

Progress = Callable[[str, int, int], None]
DISPLAY = 48  # side of one crop in a strip (about; small crops are enlarged by a whole factor)
SEPARATOR = 2  # white pixels between crops
PAD_VALUE = 0.5  # grey for the part of a receptive field outside the image
DEFAULT_IMAGES = 50_000  # images scanned at most (a stratified sample of a larger dataset)


@dataclass
class TopExamples:
    """The ``k`` best dataset images of every channel of ``layer``, best first."""

    layer: str
    values: torch.Tensor  # [C, k] float: max over positions of the channel's activation
    images: torch.Tensor  # [C, k] long: dataset indices
    positions: torch.Tensor  # [C, k, 2] long: the arg-max position (row, column)


# ----------------------------------------------------------------------------- top-k pass


def _merge(best: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
           new: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
           k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge running ``(values, images, flat positions)`` ``[C, k']`` with a batch's ``[C, B]``:
    best value first, lower dataset index first among equal values."""
    values, images, positions = (torch.cat([a, b], 1) for a, b in zip(best, new))
    order = torch.sort(images, dim=1, stable=True).indices
    values, images, positions = (t.gather(1, order) for t in (values, images, positions))
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return tuple(t.gather(1, order) for t in (values, images, positions))  # type: ignore[return-value]


def _check_layers(model: Model, layers: Sequence[str] | None) -> list[str]:
    layers = list(layers) if layers else model.layer_names
    for lay in layers:
        if lay not in model.layers:
            raise did_you_mean(lay, model.layer_names, "layer")
    return list(dict.fromkeys(layers))


def top_examples(
    model: Model,
    dataset: Dataset,
    layers: Sequence[str] | None = None,
    k: int = 9,
    batch_size: int = 256,
    indices: Sequence[int] | None = None,
    progress: Progress | None = None,
    world: World | None = None,
) -> dict[str, TopExamples]:
    """Steps 1–2: the ``k`` top images per neuron of ``layers`` (default: all) in one pass
    over ``indices`` (default: the whole dataset). With a ``world`` of several processes each
    scans its share; rank 0 gets the merged result, the others an empty dict."""
    world = world or World()
    layers = _check_layers(model, layers)
    if k < 1 or batch_size < 1:
        raise MassifError("k and batch_size must be at least 1")
    indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    indices = world.shard(indices)
    device = model.device
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    widths: dict[str, int] = {}
    done = 0
    paths = {lay: model.layers[lay] for lay in layers}
    units = {lay: model.units[lay] for lay in layers}
    with frozen(model.module), record(model.module, paths, units=units) as acts, \
            torch.no_grad():
        for images, chunk in dataset.batches(indices, batch_size):
            model.module(images.to(device))
            idx = torch.tensor(chunk, dtype=torch.long, device=device)
            for lay in layers:  # merged where the activations are (a GPU sorts them faster)
                a = acts[lay]
                grid = units[lay].patch_grid()
                widths[lay] = grid[1] if grid else 0  # 0: no grid, the whole image
                # [B, units]: first arg-max on ties, among the patch tokens for tokens
                values, flat = units[lay].patches(a).float().max(2)
                n = units[lay].count
                new = (values.t(), idx.expand(n, -1), flat.t())
                if lay not in best:
                    empty_f = torch.empty(n, 0, device=device)
                    empty_l = torch.empty(n, 0, dtype=torch.long, device=device)
                    best[lay] = (empty_f, empty_l, empty_l)
                best[lay] = _merge(best[lay], new, k)
            done += len(chunk)
            if progress:
                progress("examples", done, len(indices))
    best = {lay: tuple(t.cpu() for t in top) for lay, top in best.items()}  # type: ignore[misc]
    if world.size > 1:
        shares = world.gather_objects((best, widths))
        if not world.main:
            return {}
        best, widths = {}, {}
        for share_best, share_widths in shares:  # type: ignore[union-attr]
            widths.update(share_widths)
            for lay, top in share_best.items():
                best[lay] = _merge(best[lay], top, k) if lay in best else top
    out = {}
    for lay in layers:
        if lay not in best:  # no images at all
            c = model.layer_channels[lay]
            out[lay] = TopExamples(lay, torch.empty(c, 0), torch.empty(c, 0, dtype=torch.long),
                                   torch.empty(c, 0, 2, dtype=torch.long))
            continue
        values, images, flat = best[lay]
        w = widths[lay]
        pos = (torch.stack([flat // w, flat % w], 2) if w else
               torch.zeros(*flat.shape, 2, dtype=torch.long))
        out[lay] = TopExamples(lay, values, images, pos)
    return out


# ----------------------------------------------------------------------------- strips on disk


def class_name(dataset: Dataset, index: int) -> str:
    """The class name of the dataset's image ``index`` (its label when the name is missing)."""
    label = int(dataset.labels[index])
    names = dataset.class_names
    return names[label] if 0 <= label < len(names) else str(label)


def examples_dir(cache: Path, model_fp: str, dataset_fp: str) -> Path:
    """``cache/examples/<model fp>-<dataset fp>``: strips ``<layer>/<channel>.png`` and
    indexes ``<layer>.json``."""
    return Path(cache) / "examples" / f"{model_fp}-{dataset_fp}"


def _display_side(window: int) -> int:
    if window >= DISPLAY:
        return DISPLAY
    return window * max(1, round(DISPLAY / window))


def _crops(image: torch.Tensor, rf: ReceptiveField, positions: list[tuple[int, int]],
           side: int) -> torch.Tensor:
    """Step 4 for one image ``[C, H, W]``: the receptive-field windows at ``positions``, as
    ``[n, C, side, side]``. The window is the field itself, or, for a field larger than the
    image, the image-sized square centred on it; outside the image is mid-grey."""
    size = image.shape[-1]
    window = min(rf.size, size)
    padded = F.pad(image, (window,) * 4, value=PAD_VALUE)
    out = []
    for i, j in positions:
        top = i * rf.stride + rf.offset + (rf.size - window) // 2
        left = j * rf.stride + rf.offset + (rf.size - window) // 2
        top, left = min(max(top, -window), size), min(max(left, -window), size)
        out.append(padded[:, top + window : top + 2 * window, left + window : left + 2 * window])
    crops = torch.stack(out)
    if side % window == 0:
        f = side // window
        return crops.repeat_interleave(f, 2).repeat_interleave(f, 3)
    return F.interpolate(crops, size=(side, side), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def _outline(crop: torch.Tensor, box: tuple[int, int, int, int], image_size: int
             ) -> torch.Tensor:
    """``crop`` (the whole image at display size, ``[C, s, s]``) with ``box`` (image pixels:
    top, left, bottom, right) framed: white outside, black inside, seen on any image."""
    out, s = crop.clone(), crop.shape[-1]
    top, left, bottom, right = (round(v * s / image_size) for v in box)
    bottom, right = max(bottom, top + 2), max(right, left + 2)
    for value, inset in ((1.0, 0), (0.0, 1)):
        t, lf = min(top + inset, s - 1), min(left + inset, s - 1)
        b, r = max(bottom - 1 - inset, t), max(right - 1 - inset, lf)
        out[:, t, lf : r + 1] = value
        out[:, b, lf : r + 1] = value
        out[:, t : b + 1, lf] = value
        out[:, t : b + 1, r] = value
    return out


def _strip_png(crops: torch.Tensor) -> bytes:
    """``[n, C, s, s]`` in [0, 1] side by side, ``SEPARATOR`` white pixels apart, as PNG."""
    from .visualize import to_png

    n, c, s, _ = crops.shape
    strip = torch.ones(c, s, max(1, n * s + (n - 1) * SEPARATOR))
    for m in range(n):
        strip[:, :, m * (s + SEPARATOR) : m * (s + SEPARATOR) + s] = crops[m]
    return to_png(strip, min_size=1)  # crops are already at display size


def _cached(folder: Path, layer: str, k: int, channels: int, sample: int | None) -> bool:
    index = folder / f"{layer}.json"
    if not index.is_file():
        return False
    try:
        saved = ExamplesIndex.model_validate_json(index.read_text())
        if saved.k != k or saved.sample != sample:
            return False
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return False
    return all((folder / layer / f"{c}.png").is_file() for c in range(channels))


def ensure_examples(
    model: Model,
    dataset: Dataset,
    cache: Path,
    layers: Sequence[str] | None = None,
    k: int = 9,
    batch_size: int = 256,
    progress: Progress | None = None,
    images: int = DEFAULT_IMAGES,
    world: World | None = None,
) -> dict[str, Path]:
    """Dataset-example strips of every neuron of ``layers`` (default: all); id → PNG path.

    A layer whose index and strips are on disk (for the same ``k`` and sample) is not
    recomputed; the others share one pass over ``dataset``, or over a stratified sample of
    ``images`` of it when it is larger. Files are written atomically. Under torchrun (``world``)
    every rank calls this: they share the pass, and rank 0 writes (the others get ``{}``).
    """
    world = world or World()
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise MassifError(f"the examples' image count must be a whole number ≥ 1, not "
                          f"{str(images)[:40]}")
    layers = _check_layers(model, layers)
    folder = examples_dir(cache, model.fingerprint, dataset.fingerprint)
    sample = images if images < len(dataset) else None
    todo = [lay for lay in layers
            if not _cached(folder, lay, k, model.layer_channels[lay], sample)]
    todo = world.share_object(todo)  # type: ignore[assignment]
    scan = sample_indices(dataset, sample) if sample else None
    tops = (top_examples(model, dataset, todo, k, batch_size, indices=scan, progress=progress,
                         world=world) if todo else {})
    if not world.main:
        return {}
    size = model.image_size
    for lay in todo:
        top, rf = tops[lay], receptive_field(model, lay)
        # a token (a Swin position) sees the whole image (its window) through attention: its
        # example is the image, with the top position's patch (its receptive field) outlined
        whole = model.units[lay].layout != "channels"
        side = _display_side(size if whole else min(rf.size, size))
        n_ch, n_k = top.images.shape
        crops = torch.empty(n_ch, n_k, model.channels, side, side)
        wanted: dict[int, list[tuple[int, int]]] = {}
        for c in range(n_ch):
            for m in range(n_k):
                wanted.setdefault(int(top.images[c, m]), []).append((c, m))
        order = sorted(wanted)
        for images, chunk in dataset.batches(order, batch_size):
            for image, index in zip(images, chunk):
                refs = wanted[index]
                pos = [tuple(top.positions[c, m].tolist()) for c, m in refs]
                if whole:
                    pictures = _crops(image, ReceptiveField(size, size, 0), [(0, 0)] * len(pos),
                                      side)
                    pictures = [_outline(p, crop_box(rf, i, j, size), size)
                                for p, (i, j) in zip(pictures, pos)]
                else:
                    pictures = _crops(image, rf, pos, side)
                for (c, m), crop in zip(refs, pictures):
                    crops[c, m] = crop
        channels = []
        for c in range(n_ch):
            write_atomic(folder / lay / f"{c}.png", _strip_png(crops[c]))
            channels.append(ExampleChannel(
                images=top.images[c].tolist(),
                values=[round(v, 6) for v in top.values[c].tolist()],
                positions=top.positions[c].tolist(),
                boxes=[list(crop_box(rf, i, j, size)) for i, j in top.positions[c].tolist()],
                classes=[class_name(dataset, i) for i in top.images[c].tolist()],
            ))
        index = ExamplesIndex(
            layer=lay, k=k, sample=sample, model=model.fingerprint, dataset=dataset.fingerprint,
            image_size=size, channels=channels,
            receptive_field=ReceptiveFieldInfo(size=rf.size, stride=rf.stride, offset=rf.offset))
        write_atomic(folder / f"{lay}.json", index.model_dump_json())
    return {f"{lay}:{c}": folder / lay / f"{c}.png"
            for lay in layers for c in range(model.layer_channels[lay])}

