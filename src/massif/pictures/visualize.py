"""``visualize``: feature visualization, a picture of what each neuron looks for.

The algorithm (Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill; Mordvintsev,
Pezzotti, Schubert & Olah 2018, "Differentiable Image Parameterizations", Distill):

1. Parametrise one image per neuron in a decorrelated Fourier basis: a random complex spectrum
   ``[N, C, H, W//2+1]`` (standard deviation 0.01), scaled by ``1/f`` so that every frequency
   band starts with about the same energy, turned into pixels by an inverse real FFT.
2. For a three-channel model, decorrelate colour: mix the channels with the square root of the
   ImageNet colour-correlation matrix, so one parameter moves one "natural" colour direction.
   Grayscale (or any other channel count) is left plain.
3. A sigmoid maps the result into [0, 1], the model's input range (normalisation is inside the
   model wrapper).
4. Each step, every image of the batch gets its own random transformation, drawn from a
   generator seeded by ``(seed, neuron id)``: translation (a few percent of the size), scale
   (±10 %) and rotation (±10°), one ``affine_grid``/``grid_sample`` call; the area uncovered
   by the transformation reads as mid-grey (the constant padding of Lucid). Only patterns that
   survive such jitter grow, which keeps high-frequency noise out.
5. The objective of neuron ``layer:channel`` is the channel's mean activation over positions.
   Image ``i`` of the batch belongs to neuron ``i``, so one forward and one backward pass serve
   the whole batch: ``loss = -Σ_i mean(act_i[channel_i]) / u_i``, where the constant ``u_i`` is
   the mean |activation| of image ``i``'s layer at the first step (so that a layer whose
   activations are tiny, as deep in a randomly initialised net, still moves past Adam's
   epsilon; Adam is otherwise blind to that scale). Adam for ``steps`` steps, its
   learning rate (0.1) decaying along a cosine to 0, which gives smoother, less saturated
   pictures than Lucid's constant 0.05 at the same step count. A neuron that nothing in its
   image activates (zero gradient) is restarted from a stronger, smoother random image.
6. The result is the image of step 3 without transformation.

Neurons are batched input side first, and each batch's forward pass stops after its deepest
layer (``hooks.stop_after``): the layers after it would only cost time.

Because each neuron has its own generator and Adam acts element-wise, a neuron's picture does not
depend on which other neurons share its batch (up to floating-point summation order).

Pitfalls: a channel that not even the restarts of step 5 activate (a truly dead ReLU) gets no
gradient and stays grey. Pictures are cached by model and neuron only (``picture_path``): the render
arguments are not part of the key, so delete the folder after changing them.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..distributed import World
from ..errors import MassifError, did_you_mean, is_index, short
from ..files import write_atomic
from ..hooks import ForwardStopped, frozen, record, stop_after
from ..memory import auto_batch_size
from ..models import Model

Progress = Callable[[str, int, int], None]
# Square root of the ImageNet colour-correlation matrix (Lucid's ``color_correlation_svd_sqrt``).
COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)
INIT_SD = 0.01  # standard deviation of the initial spectrum
MAX_BATCH = 64  # neurons per optimisation at most
MIN_PICTURE = 112  # tiny images are upscaled (nearest) to at least this many pixels per side


def parse_neuron(model: Model, neuron_id: str) -> tuple[str, int]:
    """``'mixed4a:12'`` → ``('mixed4a', 12)``, checked against the model's layers."""
    layer, sep, channel = str(neuron_id).strip().rpartition(":")
    if not sep or not layer or not is_index(channel):
        raise MassifError(f"{short(neuron_id)} is not a neuron id; use layer:channel, e.g. "
                          f"{(model.layer_names or ['mixed4a'])[0]}:12")
    if layer not in model.layers:
        raise did_you_mean(layer, model.layer_names, "layer")
    n = model.layer_channels.get(layer)
    if n is not None and int(channel) >= n:
        raise MassifError(f"neuron {neuron_id}: layer {layer} has channels 0..{n - 1}")
    return layer, int(channel)


def _neuron_seed(seed: int, neuron_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{neuron_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _spectrum_scale(h: int, w: int) -> torch.Tensor:
    """``1/f`` (f clipped below at ``1/max(h, w)``) on the ``rfft2`` grid ``[h, w//2+1]``."""
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    f = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / f.clamp_min(1.0 / max(h, w))


class _FourierImages:
    """A batch of images ``[N, C, H, W]`` in [0, 1] made from learnable spectra (steps 1–3)."""

    def __init__(self, spectra: torch.Tensor, size: int, channels: int) -> None:
        self.spectra = spectra.requires_grad_(True)  # [N, C, H, W//2+1, 2] (real, imaginary)
        self.size = size
        self.scale = _spectrum_scale(size, size).to(spectra.device)[..., None]
        self.color = None
        if channels == 3:
            m = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()
            self.color = m.to(spectra.device)

    def __call__(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectra * self.scale)
        x = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0
        if self.color is not None:
            x = torch.einsum("cd,ndhw->nchw", self.color, x)
        return torch.sigmoid(x)


def _transform(images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Step 4: each image's own translation, scale and rotation; ``draws`` is ``[N, 4]`` in ±1."""
    n, _, h, _ = images.shape
    shift = draws[:, :2] * max(1.0, 0.06 * h) * 2.0 / h  # pixels → grid units ([-1, 1] = size)
    zoom = 1.0 + 0.1 * draws[:, 2]
    angle = draws[:, 3] * math.radians(10.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out + 0.5


def _revive(spectra: torch.Tensor, opt: _Adam, dead: torch.Tensor,
            gens: list[torch.Generator], tries: list[int]) -> None:
    """Step 5's remedy for a neuron that no pixel of its image activates (no gradient at all):
    redraw its spectrum with its own generator, three times stronger each try and low-pass
    filtered once more (so the stronger start is smooth blobs, not pixel noise)."""
    size = spectra.shape[2]
    lowpass = (_spectrum_scale(size, size) / size)[..., None].to(spectra)
    with torch.no_grad():
        for i in torch.nonzero(dead).flatten().tolist():
            tries[i] += 1
            sd = min(INIT_SD * 3.0 ** tries[i], 3.0)
            noise = torch.randn(spectra.shape[1:], generator=gens[i]).to(spectra)
            spectra[i] = noise * sd * lowpass
            opt.exp_avg[i] = 0
            opt.exp_avg_sq[i] = 0


class _Adam:
    """Adam (Kingma & Ba 2015) on one tensor, with ``torch.optim.Adam``'s arithmetic and
    defaults (betas 0.9 and 0.999, epsilon 1e-8), the same numbers to the bit on the CPU.

    Written out because ``torch.optim``'s first call imports ``torch._dynamo``, which makes an
    empty ``torchinductor_<user>`` folder in the temporary folder of every run that draws."""

    def __init__(self, param: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.param, self.betas, self.eps, self.steps = param, betas, eps, 0
        self.exp_avg = torch.zeros_like(param)  # the moments, [N, ...] as ``param``
        self.exp_avg_sq = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One step along ``param.grad`` with learning rate ``lr``."""
        grad, (beta1, beta2) = self.param.grad, self.betas
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2**self.steps) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1**self.steps))


def render(
    model: Model,
    neurons: Sequence[str],
    *,
    steps: int = 256,
    size: int | None = None,
    lr: float = 0.1,
    batch_size: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Feature visualizations of ``neurons`` (ids ``layer:channel``): ``[N, C, H, W]`` in [0, 1].

    ``size`` defaults to the model's input size and ``C`` is the model's channel count. Runs on
    the model's device, ``batch_size`` neurons per optimisation (default: as many as fit in
    memory, at most 64); the result is on the CPU and the same for the same ``seed``, whatever
    the batch. ``progress("visualize", done, total)`` follows the batches, and is also called
    after every step with the count so far, so that a caller can stop a long batch by raising.
    """
    parsed = [parse_neuron(model, n) for n in neurons]
    size = int(size or model.image_size)
    if batch_size is None:
        batch_size = picture_batch(model, size)
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise MassifError("steps and batch_size must be at least 1 and lr positive")
    if size < 4:
        raise MassifError(f"picture size {size} is too small; use at least 4 pixels")
    device, chans = model.device, model.channels
    out = torch.empty(len(parsed), chans, size, size)
    layers = {lay: model.layers[lay] for lay in dict.fromkeys(lay for lay, _ in parsed)}
    # Input side first: a batch's forward pass stops after its deepest layer, so a batch of
    # early-layer neurons skips the rest of the network.
    order = sorted(range(len(parsed)), key=lambda i: depth(model, parsed[i][0]))
    units = {lay: model.units[lay] for lay in layers}
    with frozen(model.module), record(model.module, layers, units=units) as acts:
        for start in range(0, len(parsed), batch_size):
            where = order[start : start + batch_size]
            chunk = [parsed[i] for i in where]
            last = max((lay for lay, _ in chunk), key=lambda lay: depth(model, lay))
            ids = [f"{lay}:{ch}" for lay, ch in chunk]
            gens = [torch.Generator().manual_seed(_neuron_seed(seed, nid)) for nid in ids]
            draws_t = torch.stack([torch.rand(steps, 4, generator=g) * 2 - 1 for g in gens], 1)
            draws_t = draws_t.to(device)  # [steps, n, 4]
            shape = (chans, size, size // 2 + 1, 2)
            image = _FourierImages(
                torch.stack([torch.randn(shape, generator=g) * INIT_SD for g in gens]).to(device),
                size, chans)
            tries = [0] * len(ids)
            by_layer: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            for lay in layers:
                rows = [i for i, (l2, _) in enumerate(chunk) if l2 == lay]
                if rows:
                    by_layer[lay] = (torch.tensor(rows, device=device),
                                     torch.tensor([chunk[i][1] for i in rows], device=device))
            opt = _Adam(image.spectra)
            for step in range(steps):
                image.spectra.grad = None
                with stop_after(model.module, model.layers[last]):
                    try:
                        model.module(_transform(image(), draws_t[step]))
                    except ForwardStopped:
                        pass
                if step == 0:  # each image's activity in its layer: a fixed unit for its loss
                    scale = torch.ones(len(ids), device=device)
                    for lay, (rows, _) in by_layer.items():
                        level = acts[lay][rows].detach().abs().flatten(1).mean(1)
                        scale[rows] = level.float().clamp_min(1e-30)
                objective = torch.zeros(len(ids), device=device)
                for lay, (rows, chs) in by_layer.items():  # each unit's mean over its positions
                    a = units[lay].patches(acts[lay][rows, chs].unsqueeze(1))[:, 0]
                    objective = objective.index_add(0, rows, a.mean(1).float())
                (-(objective / scale).sum()).backward()
                dead = image.spectra.grad.flatten(1).abs().amax(1) == 0  # no gradient at all
                # cosine decay: bold first, fine at the end
                opt.step(lr * 0.5 * (1 + math.cos(math.pi * step / steps)))
                if step < steps // 2 and dead.any():
                    _revive(image.spectra, opt, dead, gens, tries)
                if progress and step + 1 < steps:  # the same count: a caller may stop here
                    progress("visualize", start, len(parsed))
            with torch.no_grad():
                out[where] = image().float().cpu()
            if progress:
                progress("visualize", start + len(chunk), len(parsed))
    return out


def depth(model: Model, layer: str) -> int:
    """Where ``layer`` runs in the model's forward pass (0 first)."""
    return model.layer_names.index(layer)


def picture_path(cache: Path, model_fingerprint: str, neuron_id: str) -> Path:
    """Where the picture of ``neuron_id`` lives: ``cache/pictures/<model fp>/<layer>/<ch>.png``."""
    layer, _, channel = neuron_id.rpartition(":")
    return Path(cache) / "pictures" / model_fingerprint / layer / f"{int(channel)}.png"


def to_png(image: torch.Tensor, min_size: int = MIN_PICTURE) -> bytes:
    """Encode ``[C, H, W]`` in [0, 1] as PNG, upscaled (nearest) to at least ``min_size``:
    grey for 1 channel (and the mean of 2), RGB from the first 3 of 3 or more."""
    from PIL import Image

    if image.shape[0] == 2:
        image = image.mean(0, keepdim=True)
    factor = max(1, math.ceil(min_size / max(image.shape[-2:])))
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    if arr.shape[0] == 1:
        pil = Image.fromarray(arr[0].numpy(), "L")
    else:
        pil = Image.fromarray(arr[:3].permute(1, 2, 0).contiguous().numpy(), "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def picture_batch(model: Model, size: int) -> int:
    """Neurons per optimisation that fit in memory (each is a forward and backward pass of one
    image of ``size`` pixels), at most ``MAX_BATCH``."""
    return min(MAX_BATCH, auto_batch_size(model.module, (model.channels, size, size), 0,
                                          model.device))


def ensure_pictures(
    model: Model,
    neurons: Sequence[str],
    cache: Path,
    *,
    progress: Progress | None = None,
    world: World | None = None,
    **render_kwargs: object,
) -> dict[str, Path]:
    """Render and save the pictures of ``neurons`` that are not cached yet; id → PNG path.

    Cached pictures are not touched, so a second call does no optimisation. Each batch's PNGs are
    written (atomically) as soon as it finishes, so an interrupted run keeps what it made. Under
    torchrun (``world``) every rank calls this and renders its share of each round of batches;
    rank 0 writes them all.
    """
    world = world or World()
    ids = [f"{lay}:{ch}" for lay, ch in (parse_neuron(model, n) for n in neurons)]
    paths = {nid: picture_path(cache, model.fingerprint, nid) for nid in ids}
    missing = [nid for nid in dict.fromkeys(ids) if not paths[nid].is_file()]
    missing.sort(key=lambda nid: depth(model, nid.rpartition(":")[0]))  # see ``render``
    missing = world.share_object(missing)  # type: ignore[assignment]
    batch = render_kwargs.pop("batch_size", None)
    size = int(render_kwargs.get("size") or model.image_size)  # type: ignore[call-overload]
    batch = int(batch) if batch is not None else picture_batch(model, size)  # type: ignore[call-overload]
    batch = world.smallest(batch)  # one round size for all ranks, that fits every one
    before = 0
    if progress and missing:
        progress("visualize", 0, len(missing))  # the bar shows before the first batch ends
    for end, chunk in world.rounds(missing, batch):

        def report(stage: str, done: int, _total: int, before: int = before, end: int = end
                   ) -> None:
            if progress:
                progress(stage, min(end, before + done * world.size), len(missing))

        images = (render(model, chunk, progress=report, batch_size=batch,  # type: ignore[arg-type]
                         **render_kwargs) if chunk else [])
        pngs = {nid: to_png(img) for nid, img in zip(chunk, images)}
        shares = world.gather_objects(pngs) if world.size > 1 else [pngs]
        if world.main:
            for share in shares:  # type: ignore[union-attr]
                for nid, png in share.items():
                    write_atomic(paths[nid], png)
        before = end
    return paths if world.main else {}
