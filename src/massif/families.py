"""Default layers of the model families MASSIF knows, named as the model names its modules.

``family_layers(net)`` gives, for a network of a known family, its analysed layers in the
forward pass's order: ``{display name: (module path inside net, layout or None, prefix)}``
(``layout``: ``units.LAYOUTS``; ``None``: read from the autograd graph, ``units.features_axis``).
Families are known by the network's class, so a model built from another config (a smaller
ViT, a Swin of other depths) gets its own defaults too.

=========================== =========================================== ====================
family                      default layers                              units
=========================== =========================================== ====================
ResNet, ResNeXt, Wide ResNet ``layer1`` … ``layer4`` (stages)            channels
RegNet                      ``trunk_output.block1`` … ``block4``        channels
ShuffleNet v2               ``stage2`` … ``stage4``                     channels
Inception v3                ``Mixed_5b`` … ``Mixed_7c``                 channels
GoogLeNet (InceptionV1)     ``mixed3a`` … ``mixed5b`` (Lucid's names)   channels
Swin (v1, v2)               ``features.1``, ``.3``, ``.5``, ``.7``       channels_last
Vision Transformer          every encoder block's MLP hidden units,     tokens (+1: the
                            after GELU: ``encoder.layers.               class token)
                            encoder_layer_N.mlp.1``
anything with ``features``  the last module of ``features`` (or          as read
or ``layers`` (ConvNeXt,    ``layers``) at each resolution (ConvNeXt's
EfficientNet, MobileNet,    stages, EfficientNet's and MobileNet's
MNASNet, DenseNet, VGG…)    stage ends)
timm vision transformers    every block's MLP hidden units after the    tokens (+ the
                            activation: ``blocks.N.mlp.act``            model's
                                                                        num_prefix_tokens)
timm, other families        the modules of ``feature_info`` that        as read
                            downsample (stages)
Hugging Face transformers   every block's MLP activation                tokens (+ tokens
(ViT, DeiT, BEiT, Swin…)    (``….mlp.activation_fn``; transformers 4:   before the
                            ``….intermediate.intermediate_act_fn``)     patches, counted)
Hugging Face convolution    ``….encoder.stages.N``                      as read
nets (ResNet, ConvNeXt…)
anything else               top-level children, each run once, with    as read
                            a map or token output
=========================== =========================================== ====================

timm and Hugging Face networks are told apart by their class's module (timm's ``ResNet`` is not
torchvision's).
"""

from __future__ import annotations

import torch
from torch import nn

LayerSpec = tuple[str, str | None, int]  # module path, layout (None: read it), prefix tokens

GOOGLENET_LAYERS = {
    f"mixed{k}": f"inception{k}" for k in ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
}


def family_layers(net: nn.Module, image_size: int = 0, channels: int = 3
                  ) -> dict[str, LayerSpec] | None:
    """The known family's layers of ``net`` (see the module docstring), or ``None``.
    ``image_size`` and ``channels``: the input, for the one pass that counts a Hugging Face
    transformer's tokens before the patches (none without a size)."""
    kind, origin = type(net).__name__, type(net).__module__
    if origin.startswith("timm."):
        return timm_layers(net) or None
    if origin.startswith("transformers."):
        return hf_layers(net, image_size, channels) or None
    children = dict(net.named_children())
    if kind == "GoogLeNet":
        return {name: (path, None, 0) for name, path in GOOGLENET_LAYERS.items()}
    if kind == "ResNet" and all(f"layer{i}" in children for i in range(1, 5)):
        return {f"layer{i}": (f"layer{i}", None, 0) for i in range(1, 5)}
    if kind == "ShuffleNetV2":  # (its channel shuffle's reshapes hide the axis from autograd)
        return {f"stage{i}": (f"stage{i}", "channels", 0) for i in range(2, 5)}
    if kind == "Inception3":
        return {n: (n, None, 0) for n in children if n.startswith("Mixed_")}
    if kind == "RegNet":
        trunk = dict(net.trunk_output.named_children())
        return {f"trunk_output.{n}": (f"trunk_output.{n}", None, 0) for n in trunk}
    if kind == "SwinTransformer":
        stages = [n for n, m in net.features.named_children()
                  if type(m).__name__ == "Sequential"
                  and any("SwinTransformerBlock" in type(b).__name__ for b in m.children())]
        return {f"features.{n}": (f"features.{n}", "channels_last", 0) for n in stages}
    if kind == "VisionTransformer":
        out = {}
        for n, block in net.encoder.layers.named_children():
            path = f"encoder.layers.{n}.mlp.1"  # Linear, GELU, Dropout, Linear, Dropout
            if isinstance(getattr(block, "mlp", [None, None])[1], nn.GELU):
                out[path] = (path, "tokens", 1)
        return out or None
    return None


def candidate_layers(net: nn.Module) -> tuple[dict[str, str], bool]:
    """Where to look for default layers in a network of no known family: the children of its
    ``features`` (or ``layers``) container, keeping the last at each resolution (``True``), or
    else its top-level children, keeping each with a map or token output (``False``)."""
    for name in ("features", "layers"):
        box = getattr(net, name, None)
        if isinstance(box, nn.Sequential) and len(box) > 1:
            return {f"{name}.{n}": f"{name}.{n}" for n, _ in box.named_children()}, True
    return {n: n for n, _ in net.named_children()}, False


def timm_layers(net: nn.Module) -> dict[str, LayerSpec]:
    """A timm network's default layers (see the module docstring)."""
    blocks = getattr(net, "blocks", None)
    prefix = getattr(net, "num_prefix_tokens", None)
    if isinstance(blocks, nn.Sequential) and prefix is not None and len(blocks) and all(
            isinstance(getattr(getattr(b, "mlp", None), "act", None), nn.Module) for b in blocks):
        return {f"blocks.{i}.mlp.act": (f"blocks.{i}.mlp.act", "tokens", int(prefix))
                for i in range(len(blocks))}
    out: dict[str, LayerSpec] = {}
    for info in getattr(net, "feature_info", None) or []:
        path = info.get("module") if isinstance(info, dict) else None
        if path and info.get("reduction", 0) >= 4 and path not in out:
            out[path] = (path, None, 0)
    return out


HF_ACTIVATIONS = (("mlp", "activation_fn"), ("mlp", "act_fn"), ("mlp", "act"),
                  ("intermediate", "intermediate_act_fn"))


def hf_layers(net: nn.Module, size: int, channels: int) -> dict[str, LayerSpec]:
    """A Hugging Face network's default layers (see the module docstring)."""
    acts = [name for name, _ in net.named_modules()
            if tuple(name.split(".")[-2:]) in HF_ACTIVATIONS]
    if acts:
        prefix = _hf_prefix(net, size, channels) if size else 0
        return {name: (name, "tokens", prefix) for name in acts}
    return {name: (name, None, 0) for name, _ in net.named_modules()
            if name.count(".") == 3 and ".encoder.stages." in f".{name}"}


def _hf_prefix(net: nn.Module, size: int, channels: int) -> int:
    """How many tokens come before the patches: the embeddings' output less the patch
    embedding's (class and distillation tokens); 0 where the model has no such pair."""
    modules = dict(net.named_modules())
    pairs = [(n, f"{n}.patch_embeddings") for n in modules
             if n.endswith("embeddings") and f"{n}.patch_embeddings" in modules]
    if not pairs:
        return 0
    whole, patches = pairs[0]
    seen: dict[str, int] = {}

    def hook(name: str):
        def record(_m, _i, out):
            t = out[0] if isinstance(out, tuple) else out
            if isinstance(t, torch.Tensor) and t.ndim == 3:
                seen.setdefault(name, t.shape[1])
        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in (whole, patches)]
    try:
        with torch.no_grad():
            net(torch.zeros(1, channels, size, size))
    except Exception:  # the probe in models.py says what is wrong with the model
        return 0
    finally:
        for h in handles:
            h.remove()
    if whole in seen and patches in seen and seen[whole] >= seen[patches]:
        return seen[whole] - seen[patches]
    return 0
