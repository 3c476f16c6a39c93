"""Models from timm and Hugging Face: ``timm:NAME`` and ``hf:PATH_OR_NAME``.

Each loader gives the network, its own mean and std (``models.load_model`` puts them inside
``Normalized``, so MASSIF's images stay in [0, 1]), its default layers (``families.LayerSpec``:
paths inside the network, with their units' layout where the family fixes it), its input size
and its class names.

``weights``: ``none`` builds the architecture with random weights, seeded (every process of a
torchrun job builds the same ones); a file is a state dict (``.pt``, ``.pth``, ``.bin`` or
``.safetensors``); nothing (or ``DEFAULT``) takes the library's own pretrained weights, from its
cache or downloaded once into it.

**timm**: ``timm.create_model(NAME)``; mean, std and size from ``resolve_data_config``; ImageNet
class names (the first name of each, as torchvision's) when the model is an ImageNet classifier.
Default layers: ``families.timm_layers``.

**Hugging Face**: ``AutoModelForImageClassification``, from a folder written by
``save_pretrained`` or a hub name; mean, std and size from ``preprocessor_config.json`` (ImageNet's
mean and std when there is none); class names from ``config.id2label``. Default layers:
``families.hf_layers``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .errors import MassifError, did_you_mean
from .families import LayerSpec, hf_layers, timm_layers
from .weights import load_state_dict, misfit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STATE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")

Loaded = tuple[nn.Module, dict[str, LayerSpec], int, tuple[float, ...], tuple[float, ...],
               list[str] | None]


def _need(package: str, extra: str):
    try:
        return __import__(package)
    except ImportError:
        raise MassifError(f"{package} is not installed: pip install 'massif[{extra}]'") from None


def _weights_kind(weights: str | None) -> str:
    """``none``, ``file`` or ``default`` (the library's own pretrained weights)."""
    spec = (weights or "DEFAULT").strip()
    if spec.lower() == "none":
        return "none"
    if spec.upper() == "DEFAULT":
        return "default"
    if Path(spec).suffix in STATE_SUFFIXES or Path(spec).exists():
        return "file"
    raise MassifError(f"unknown weights {spec!r}: use DEFAULT (the library's own), none "
                      f"(random, seeded) or a state-dict file ({', '.join(STATE_SUFFIXES)})")


def _load_file(net: nn.Module, path: str, where: str) -> None:
    state = load_state_dict(path)
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise MassifError(f"weights {path} do not fit {where}: {misfit(net, state)}") from None


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def load_timm(name: str, weights: str | None) -> Loaded:
    """A timm classifier by its name (``timm.list_models()``)."""
    timm = _need("timm", "timm")
    from timm.data import resolve_data_config

    if not timm.is_model(name):
        raise did_you_mean(name, timm.list_models(), "timm model")
    kind = _weights_kind(weights)
    try:
        if kind == "default":
            net = timm.create_model(name, pretrained=True)
        else:
            net = _seeded(lambda: timm.create_model(name, pretrained=False))
    except MassifError:
        raise
    except Exception as e:  # no pretrained weights, or offline without a cached copy
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise MassifError(f"could not get timm:{name}'s pretrained weights ({type(e).__name__}: "
                          f"{first}); download them once online, or pass --weights none or a "
                          "local state-dict file") from None
    if kind == "file":
        _load_file(net, str(weights), f"timm:{name}")
    config = resolve_data_config({}, model=net)
    size = int(config["input_size"][-1])
    names = _timm_class_names(net)
    return net, timm_layers(net), size, tuple(config["mean"]), tuple(config["std"]), names


def _timm_class_names(net: nn.Module) -> list[str] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
    except ImportError:  # timm before 0.9.8
        return None
    subset = infer_imagenet_subset(net)
    if not subset:
        return None
    info = ImageNetInfo(subset)
    n = getattr(net, "num_classes", 0)
    try:
        # the first of each description's names, as torchvision's ImageNet categories
        return [info.index_to_description(i).split(",")[0].strip() for i in range(n)]
    except (IndexError, KeyError):
        return None


def load_hf(where: str, weights: str | None) -> Loaded:
    """A Hugging Face image classifier: a ``save_pretrained`` folder or a hub name."""
    transformers = _need("transformers", "hf")
    auto = transformers.AutoModelForImageClassification
    local = Path(where).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise MassifError(f"{where} has no config.json: give a folder written by a Hugging Face "
                          "model's save_pretrained(), or a hub name")
    source = str(local) if local.exists() else where
    kind = _weights_kind(weights)
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # no progress bars or notes among our lines
    progress = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        config = transformers.AutoConfig.from_pretrained(source)
        if kind == "default":
            net = auto.from_pretrained(source)
        else:
            net = _seeded(lambda: _from_config(transformers, config))
    except MassifError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        if isinstance(e, (OSError, EnvironmentError)) and not local.exists():
            raise MassifError(f"no Hugging Face model hf:{where}: not a folder here, and not in "
                              f"the cache nor downloadable ({first}); give a folder written by "
                              "save_pretrained(), or download the model once online") from None
        raise MassifError(f"cannot load hf:{where} as an image classifier "
                          f"({type(e).__name__}: {first})") from None
    finally:
        transformers.logging.set_verbosity(quiet)
        if progress:
            transformers.utils.logging.enable_progress_bar()
    if kind == "file":
        _load_file(net, str(weights), f"hf:{where}")
    net.eval()
    processor = _hf_preprocessor(source)
    mean = tuple(processor.get("image_mean") or IMAGENET_MEAN)
    std = tuple(processor.get("image_std") or IMAGENET_STD)
    if processor.get("do_normalize") is False:
        mean, std = (0.0,) * len(mean), (1.0,) * len(std)
    size = _hf_size(processor, config)
    labels = getattr(config, "id2label", None) or {}
    names = [str(labels.get(i, labels.get(str(i), i))) for i in range(len(labels))] or None
    if names and all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        names = None  # transformers' placeholders say nothing
    channels = int(getattr(config, "num_channels", 3) or 3)
    return net, hf_layers(net, size, channels), size, mean, std, names


def _from_config(transformers, config: object) -> nn.Module:
    """The architecture of ``config`` with fresh weights. A config with no ``architectures`` may
    map to several classes (DeiT: with and without its teacher's head): the first is the plain
    classifier."""
    if getattr(config, "architectures", None):
        return transformers.AutoModelForImageClassification.from_config(config)
    mapping = transformers.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING
    if type(config) not in mapping:
        raise MassifError(f"a {type(config).__name__} is not an image classifier")
    cls = mapping[type(config)]
    return (cls[0] if isinstance(cls, (tuple, list)) else cls)(config)


def _hf_preprocessor(source: str) -> dict:
    """``preprocessor_config.json`` of the model (empty when it has none)."""
    path = Path(source) / "preprocessor_config.json"
    if not path.is_file() and not Path(source).exists():
        try:
            from transformers.utils import cached_file

            found = cached_file(source, "preprocessor_config.json")
            path = Path(found) if found else path
        except Exception:  # none on the hub or in the cache: the defaults below
            return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _hf_size(processor: dict, config: object) -> int:
    for key in ("crop_size", "size"):
        value = processor.get(key)
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            for k in ("height", "shortest_edge"):
                if isinstance(value.get(k), int):
                    return value[k]
    size = getattr(config, "image_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if isinstance(size, int) and size > 0 else 224
