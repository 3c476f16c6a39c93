"""Models: load a classifier that takes [0, 1] images and name its analysable layers.

``load_model(spec)`` understands these kinds of ``spec``:

* ``bundled`` (the default): the small InceptionV1-style Fashion-MNIST net shipped with MASSIF,
  layers ``mixed3a mixed3b mixed4a mixed4b mixed5a``; ``bundled-robust``: the same network
  adversarially trained (PGD-L2, ``python -m massif.bundled.train --robust``); ``bundled-vit``:
  a small vision transformer on the same data (``bundled/vit.py``), layers ``mlp1`` … ``mlp4``
  (each block's MLP units, the class token apart).
* ``torchvision:NAME``: any torchvision classifier, with ImageNet normalisation inside the wrapper
  and ImageNet class names, and its family's default layers (``families.py``), named as the
  network names its modules (``layer1``; the wrapper's ``net.layer1`` still accepted).
  ``torchvision:googlenet`` is InceptionV1 with Summit's layer names
  (``mixed3a … mixed5b`` → ``inception3a … inception5b``). ``weights`` is ``DEFAULT`` (or
  another of the model's torchvision weights: downloaded once into torch's cache), ``none``
  (random init, seeded: the same weights every time) or a local state-dict file.
* ``timm:NAME`` and ``hf:PATH_OR_NAME`` (Hugging Face's ``AutoModelForImageClassification``): the
  library's model with its own normalisation, input size, class names and family's default
  layers (``model_zoo.py``); the optional extras ``massif[timm]`` and ``massif[hf]``.
* ``path/to/file.py:factory``: ``factory()`` returns an ``nn.Module`` taking ``[B, C, H, W]``
  images in [0, 1]; ``weights`` is an optional state-dict file loaded with
  ``torch.load(weights_only=True)``.

A ``Model`` is the module plus what the analysis needs to know about it: layer names (input side
first) mapped to module paths, each layer's units (``units.Units``: layout and count), input size
and channels, class names, and a fingerprint of its weights (for caching).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import model_zoo
from .errors import MassifError, did_you_mean
from .families import LayerSpec, candidate_layers, family_layers
from .hooks import frozen, get_module
from .model_zoo import IMAGENET_MEAN, IMAGENET_STD
from .units import Units, parse_layer, units_of
from .weights import apply_weights, load_state_dict, misfit

BUNDLED_WEIGHTS = Path(__file__).parent / "bundled" / "fashion_inception.pt"
ROBUST_WEIGHTS = Path(__file__).parent / "bundled" / "fashion_inception_robust.pt"
VIT_WEIGHTS = Path(__file__).parent / "bundled" / "fashion_vit.pt"


class Normalized(nn.Module):
    """``net((x - mean) / std)``: keeps the model's input in [0, 1]."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net((x - self.mean) / self.std)
        # googlenet and inception_v3 in train mode give a named tuple, Hugging Face models a
        # dict with logits; the isinstance keeps torch.fx's proxies (which have every
        # attribute) out
        if isinstance(out, (tuple, dict)) and hasattr(out, "logits"):
            return out.logits
        return out


@dataclass
class Model:
    """A classifier on [0, 1] images plus the facts the analysis needs about it."""

    module: nn.Module
    name: str
    layers: dict[str, str]  # display name → module path, input side first
    image_size: int
    channels: int
    class_names: list[str] | None = None
    default_dataset: str | None = None
    layer_channels: dict[str, int] = field(default_factory=dict)  # units per layer
    fingerprint: str = ""
    named_layers: bool = False  # layers given, not the model's own: part of an analysis's key
    units: dict[str, Units] = field(default_factory=dict)  # display name → its units
    given_layouts: dict[str, str] = field(default_factory=dict)  # --layers NAME@LAYOUT

    @property
    def path_units(self) -> dict[str, Units]:
        """Module path → units (what ``hooks.mask`` takes)."""
        return {self.layers[lay]: u for lay, u in self.units.items() if lay in self.layers}

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)

    def to(self, device: torch.device | str) -> Model:
        """Move the module to ``device`` (checked as ``--device`` is: auto, cpu, cuda, cuda:N)."""
        from .devices import resolve_device

        self.module.to(resolve_device(device))
        return self

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")


def fingerprint(module: nn.Module, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _bundled(weights: str | None = None, kind: str = "bundled"
             ) -> tuple[nn.Module, dict[str, LayerSpec], int, int, list[str], str]:
    """``bundled``, ``bundled-robust`` or ``bundled-vit``, with the shipped weights or
    ``weights`` (the user's own training of the architecture)."""
    from .datasets import FASHION_CLASSES

    if kind == "bundled-vit":
        from .bundled.vit import LAYERS as VIT_LAYERS
        from .bundled.vit import FashionViT

        net: nn.Module = FashionViT()
        specs: dict[str, LayerSpec] = {n: (p, "tokens", 1) for n, p in VIT_LAYERS.items()}
        shipped, flag = VIT_WEIGHTS, " --vit"
    else:
        from .bundled.net import LAYERS, FashionInception

        net, specs = FashionInception(), {n: (n, None, 0) for n in LAYERS}
        robust = kind == "bundled-robust"
        shipped, flag = (ROBUST_WEIGHTS, " --robust") if robust else (BUNDLED_WEIGHTS, "")
    if weights is not None:  # the user's own training of the bundled architecture
        apply_weights(net, weights)
    else:
        if not shipped.is_file():
            raise MassifError(f"the bundled weights {shipped} are missing; rebuild them with "
                              f"`python -m massif.bundled.train{flag}`")
        apply_weights(net, shipped)
    if kind != "bundled-vit":  # on CPU the CNN runs fastest in channels_last
        net = net.to(memory_format=torch.channels_last)
    return net.eval(), specs, 28, 1, list(FASHION_CLASSES), "fashion-mnist"


def _torchvision(name: str, weights: str | None) -> tuple[nn.Module, list[str]]:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise did_you_mean(name, available, "torchvision model")
    try:
        weight_enum = torchvision.models.get_model_weights(name)
        categories = list(weight_enum.DEFAULT.meta.get("categories") or [])
    except (ValueError, AttributeError):
        weight_enum, categories = None, []
    spec = (weights or "DEFAULT").strip()
    kwargs = {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": True}
    if spec.lower() == "none":
        # Seeded: every process (every rank of a torchrun job, every rerun) builds the same
        # random weights, so the fingerprint, the caches and the shared sums agree.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = torchvision.models.get_model(name, weights=None, **kwargs)
    elif Path(spec).suffix in (".pt", ".pth", ".bin") or Path(spec).exists():
        if name == "googlenet":  # torchvision's own checkpoints expect these settings
            kwargs = {"aux_logits": False, "init_weights": False, "transform_input": True}
        net = torchvision.models.get_model(name, weights=None, **kwargs)
        state = load_state_dict(spec)
        state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise MassifError(f"weights {spec} do not fit torchvision:{name}: "
                              f"{misfit(net, state)}") from None
    else:
        if name == "googlenet":
            kwargs = {}
        choices = [w.name for w in weight_enum] if weight_enum else []
        try:
            entry = weight_enum.verify(spec) if weight_enum else None
        except KeyError:
            entry = None
        if entry is None:
            raise MassifError(
                f"unknown weights {spec!r} for torchvision:{name}: use DEFAULT, none, "
                f"a state-dict file{', or one of ' + ', '.join(choices) if choices else ''}")
        from .download import torchvision_weights

        try:
            torchvision_weights(entry, f"torchvision:{name}")
        except MassifError as e:
            if not str(e).startswith("could not download"):
                raise
            raise MassifError(f"{e}; download them once online, or pass --weights none or a "
                              "local state-dict file") from None
        net = torchvision.models.get_model(name, weights=entry, **kwargs)  # from the cache
    if name == "googlenet":  # on CPU its passes run about twice as fast in channels_last
        net = net.to(memory_format=torch.channels_last)
    return Normalized(net, IMAGENET_MEAN, IMAGENET_STD), categories


def _from_file(spec: str, weights: str | None) -> nn.Module:
    path_s, _, factory_name = spec.rpartition(":")
    path = Path(path_s)
    if not path_s or not factory_name:
        raise MassifError(f"model {spec!r}: use path/to/file.py:factory")
    if not path.is_file():
        raise MassifError(f"model file {path} does not exist")
    mod_name = f"massif_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    # The file's folder is importable while it loads and builds the model, as for
    # ``python file.py``: a model file may import its neighbours (``from net import Net``).
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        try:
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = module
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # a script's sys.exit() too: not a module
            raise MassifError(f"cannot import {path}: {type(e).__name__}: {e}") from None
        factory = getattr(module, factory_name, None)
        if factory is None or not callable(factory):
            found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
            raise did_you_mean(factory_name, found, f"factory in {path}")
        try:
            net = factory()
        except (Exception, SystemExit) as e:
            raise MassifError(f"{spec}() failed: {type(e).__name__}: {e}") from None
    finally:
        if added:
            sys.path.remove(folder)
    if not isinstance(net, nn.Module):
        raise MassifError(f"{spec}() returned {type(net).__name__}, not a torch nn.Module")
    if weights:
        apply_weights(net, weights)
    return net


def load_model(
    spec: str | nn.Module = "bundled",
    weights: str | None = None,
    layers: list[str] | str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    class_names: list[str] | None = None,
) -> Model:
    """Load a model by ``spec`` (see the module docstring) or wrap a given ``nn.Module``.

    ``layers`` (names from ``named_modules()``, or the model's own layer names, in any order:
    they are put in the order the forward pass runs them) overrides the default layer list.
    ``image_size`` and ``channels`` default to the model's own (bundled: 28 and 1;
    torchvision: 224 and 3) and are otherwise required for a probe pass.
    """
    default_dataset = None
    names: list[str] | None = None
    if not isinstance(spec, (str, nn.Module, type(None))):
        raise MassifError(f"the model is a name (bundled, torchvision:NAME, timm:NAME, hf:PATH, "
                          "file.py:factory) "
                          f"or an nn.Module, not {type(spec).__name__}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise MassifError(f"weights must be a file path or a name, not {type(weights).__name__}")
    weights = os.fspath(weights) if weights is not None else None
    if isinstance(spec, nn.Module):
        module, own, name = spec, None, type(spec).__name__
    elif spec in ("bundled", "bundled-robust", "bundled-vit", "", None):
        name = spec or "bundled"
        module, own, size, chans, names, default_dataset = _bundled(weights, name)
        image_size, channels = image_size or size, channels or chans
    elif spec.startswith("torchvision:"):
        module, names = _torchvision(spec.split(":", 1)[1], weights)
        own, image_size, channels, name = None, image_size or 224, channels or 3, spec
    elif spec.startswith(("timm:", "hf:")):
        library, _, which = spec.partition(":")
        if not which.strip():
            raise MassifError(f"model {spec!r}: name the model, e.g. timm:resnet18 or "
                              "hf:path/to/folder")
        load = model_zoo.load_timm if library == "timm" else model_zoo.load_hf
        net, own, size, mean, std, names = load(which.strip(), weights)
        module, name = Normalized(net, mean, std).eval(), spec
        image_size, channels = image_size or size, channels or len(mean)
    elif ":" in spec:
        module, own, name = _from_file(spec, weights), None, spec
    else:
        raise MassifError(
            f"unknown model {spec!r}: use bundled, bundled-robust, bundled-vit, torchvision:NAME, "
            "timm:NAME, hf:PATH_OR_NAME or path/to/file.py:factory"
        )
    class_names = class_names or names or None
    # The user's network: inside ``Normalized``, its paths are the user's names ("layer1"),
    # the wrapper's ("net.layer1") still accepted.
    inner, at = (module.net, "net.") if isinstance(module, Normalized) else (module, "")
    if own is None:
        own = family_layers(inner, image_size or 0, channels or 3)
    own = {lay: (at + path, layout, pre) for lay, (path, layout, pre) in (own or {}).items()}

    if isinstance(layers, str):
        layers = layers.split(",")
    if layers is not None and not isinstance(layers, (list, tuple)):
        raise MassifError(f"layers must be a list of names, not {type(layers).__name__}")
    if layers is not None:
        if not all(isinstance(v, str) for v in layers):
            raise MassifError("layers must be layer names")
        stripped = [v.strip() for v in layers]
        if not stripped or not all(stripped):
            raise MassifError(f"layers {','.join(layers)!r} has an empty name (two commas in a "
                              "row, or one at an end); name the layers, or leave the option "
                              "out for the model's defaults")
        layers = stripped
    specs: dict[str, LayerSpec] = {}
    given: dict[str, str] = {}
    if layers:
        paths = {n for n, _ in module.named_modules() if n}
        for item in layers:
            lay, layout, pre = parse_layer(item)
            if at and lay.startswith(at) and lay not in own and lay[len(at):] in own:
                lay = lay[len(at):]  # the old spelling of a family layer
            if lay in own:
                path = own[lay][0]
                layout = layout or own[lay][1]
                pre = pre if layout != own[lay][1] or pre else own[lay][2]
            elif at + lay in paths:
                path = at + lay
            elif lay in paths:
                path, lay = lay, lay[len(at):] if at and lay.startswith(at) else lay
            else:
                names_ = [*own, *(p[len(at):] for p in sorted(paths) if p.startswith(at))]
                raise did_you_mean(lay, list(dict.fromkeys(names_)), "layer")
            specs[lay] = (path, layout, pre)
            if "@" in item:
                given[lay] = f"{layout}{'+' + str(pre) if pre else ''}"
        named: dict[str, str] = {}
        for lay, (path, _, _) in specs.items():
            if path in named:
                raise MassifError(f"layers {named[path]} and {lay} are the same module "
                                  f"({path}); name it once")
            named[path] = lay

    model = Model(module=module, name=name, layers={}, image_size=image_size or 0,
                  channels=channels or 0, class_names=class_names,
                  default_dataset=default_dataset, given_layouts=given)
    if specs:
        probe(model, specs, "given")
    elif own:
        probe(model, own, "family")
    else:
        found, by_resolution = candidate_layers(inner)
        found = {lay: (at + path, None, 0) for lay, path in found.items()}
        probe(model, found, "resolution" if by_resolution else "children")
    model.fingerprint = fingerprint(module, name)
    model.named_layers = bool(layers)
    return model


def probe(model: Model, specs: dict[str, LayerSpec], mode: str = "given") -> None:
    """One forward pass on a blank image: checks the input shape and measures each layer.

    ``specs``: display name → (module path, layout or ``None``, prefix tokens). Fills
    ``model.layers``, ``model.units`` and ``model.layer_channels``, input side first (in the
    order the forward pass runs them, whatever order they were named in), and infers
    ``channels`` (3, else 1) when unknown. The layout of each layer is the given one, or the
    one its autograd graph shows (``units.units_of``). ``mode``: ``given`` and ``family``
    layers must all work (else one clear error); of the candidates for default layers,
    ``children`` keeps every one that runs once with a map or token output, ``resolution``
    keeps the last at each resolution (of more than one position).
    """
    if not model.image_size:
        raise MassifError(f"model {model.name}: give --image-size (the input's height = width)")
    channel_options = [model.channels] if model.channels else [3, 1]
    strict = mode in ("given", "family")
    first_error: Exception | None = None
    for c in channel_options:
        calls: dict[str, list[object]] = {name: [] for name in specs}
        order: list[str] = []  # as the forward pass first runs them

        def hook(_m: nn.Module, _i: object, out: object, name: str) -> None:
            if not calls[name]:
                order.append(name)
            calls[name].append(out if isinstance(out, torch.Tensor) else None)

        handles = [get_module(model.module, path).register_forward_hook(
            functools.partial(hook, name=name)) for name, (path, _, _) in specs.items()]
        try:
            with frozen(model.module), torch.enable_grad():
                x = torch.zeros(1, c, model.image_size, model.image_size, device=model.device,
                                requires_grad=True)  # so the outputs show how they were made
                out = model.module(x)
        except Exception as e:  # the usual channel count's error says most (not "expected
            first_error = first_error or e  # 3 channels" from the 1-channel retry)
            continue
        finally:
            for h in handles:
                h.remove()
        if isinstance(out, tuple) and not isinstance(out, torch.Tensor):
            raise MassifError(f"model {model.name} must return logits [B, classes]; it returned "
                              f"a {type(out).__name__} of {len(out)}: wrap it to return the "
                              "logits alone")
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise MassifError(f"model {model.name} must return logits [B, classes]; "
                              f"it returned {getattr(out, 'shape', type(out).__name__)}")
        model.channels = c
        n_classes = out.shape[1]
        if model.class_names is None:
            model.class_names = [str(i) for i in range(n_classes)]
        elif len(model.class_names) != n_classes:
            raise MassifError(f"model {model.name} has {n_classes} outputs but "
                              f"{len(model.class_names)} class names")
        chosen: dict[str, tuple[str, Units]] = {}
        for name in [*order, *(n for n in calls if n not in order)]:
            outs, (path, layout, pre) = calls[name], specs[name]
            why = ("never runs" if not outs else
                   f"runs {len(outs)} times per forward pass (a module shared by several "
                   "places: name one place that runs once)" if len(outs) > 1 else
                   "outputs a non-tensor (a tuple or dict)" if outs[0] is None else "")
            try:
                if why:
                    raise MassifError(f"layer {name} cannot be analysed: it {why}")
                chosen[name] = (path, units_of(outs[0], name, layout, pre))  # type: ignore[arg-type]
            except MassifError:
                if strict:
                    raise
        if mode == "resolution":  # the last of each run of layers at one resolution
            kept: dict[str, tuple[str, Units]] = {}
            names = list(chosen)
            for i, name in enumerate(names):
                grid = chosen[name][1].grid
                if len(grid) == 2 and grid[0] * grid[1] > 1 and (
                        i + 1 == len(names) or chosen[names[i + 1]][1].grid != grid):
                    kept[name] = chosen[name]
            chosen = kept
        if not chosen:
            raise MassifError(f"model {model.name}: no layer with a map [B, C, H, W] or a "
                              "token sequence [B, T, D] found; name them with --layers")
        model.layers = {name: path for name, (path, _) in chosen.items()}
        model.units = {name: u for name, (_, u) in chosen.items()}
        model.layer_channels = {name: u.count for name, u in model.units.items()}
        return
    shape = f"[B, {'/'.join(map(str, channel_options))}, {model.image_size}, {model.image_size}]"
    raise MassifError(
        f"model {model.name} fails on input {shape}: "
        f"{type(first_error).__name__}: "
        f"{(str(first_error).splitlines() or [''])[0] if first_error else ''}"
    )
