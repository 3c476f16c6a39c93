"""Neuron ids, and the edited model outside MASSIF: ``Editor.export``'s file and ``apply_mask``.

* A mask is a list of neuron ids ``layer:channel`` (``mixed4a:12``); ``parse_mask`` checks them
  against the model's layers and groups them per layer; ``mask_ids`` turns that back into ids.
* The export file is one ``torch.save`` dict (loadable with ``weights_only=True``): the model's
  state dict, the mask, the mode, the fill values (mode ``mean``) and the layer name → module
  path map. ``apply_mask(module, file)`` loads it into a fresh module of the same architecture
  and returns a ``MaskedModel``, which masks the channels on every forward pass through
  ``hooks.mask``, the hook machinery of the analysis.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import ValidationError
from torch import nn

from ..errors import MassifError, did_you_mean, is_index, short
from ..files import writable_file, write_atomic
from ..hooks import get_module, mask
from ..schemas import ExportHeader, first_error
from ..units import Units, parse_layer

Mode = Literal["zero", "mean"]


@dataclass(frozen=True)
class Mask:
    """Checked neurons to delete: ``channels`` (display layer → sorted channels) and ``mode``
    (``zero``: the channel's output set to 0; ``mean``: to its mean over the clean benign
    images). Build one with ``Session.parse``."""

    channels: dict[str, list[int]]
    mode: Mode = "zero"

    @property
    def ids(self) -> list[str]:
        return mask_ids(self.channels)

    @property
    def key(self) -> tuple:
        return (tuple(self.ids), self.mode)


class Counts:
    """Raw counts of one measurement: images and how many the model gets right, successes per
    asked strength (``adaptive``, ``transfer``), the sample and how many it gets right."""

    def __init__(self, n_strengths: int) -> None:
        self.n_images = self.n_correct = self.n_sample = self.sample_correct = 0
        self.adaptive = [0] * n_strengths
        self.transfer = [0] * n_strengths
        self.correct: list[torch.Tensor] = []  # per batch: classified benign when clean

    def rates(self, hits: list[int]) -> list[float]:
        """Successes per strength over the correctly classified images."""
        return [h / self.n_correct if self.n_correct else 0.0 for h in hits]

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_images if self.n_images else 0.0

    @property
    def sample_accuracy(self) -> float:
        return self.sample_correct / self.n_sample if self.n_sample else 0.0


EXPORT_FORMAT = "massif-edited-model"
EXPORT_VERSION = 1
MAX_MASK = 100_000  # neuron ids in one mask


def parse_mask(ids: Sequence[str] | str, layer_channels: dict[str, int],
               layer_order: Sequence[str] | None = None, *,
               whole_layer_ok: bool = False) -> dict[str, list[int]]:
    """Neuron ids (a list, or one comma-separated string) → ``{layer: sorted channels}``.

    Raises a one-line ``MassifError`` for a malformed id, an empty one (``"mixed4a:1,,"``: two
    commas in a row or one at an end), an unknown layer, a channel out of range, an empty mask,
    or a mask holding every channel of a layer. Duplicates are allowed. The CLI's ``--mask``
    and the server's edits both come here.
    """
    if isinstance(ids, str):
        ids = [s for s in ids.split(",")]
    if not isinstance(ids, Iterable):
        raise MassifError(f"a mask is a list of neuron ids (layer:channel) or one "
                          f"comma-separated string, not {type(ids).__name__}")
    ids = [str(i).strip() for i in ids]
    if not any(ids):
        raise MassifError("the mask is empty; name at least one neuron as layer:channel, "
                          "e.g. mixed4a:12")
    if not all(ids):
        raise MassifError(f"neuron id {ids.index('') + 1} of {len(ids)} in the mask is empty "
                          "(two commas in a row, or one at an end); name each neuron as "
                          "layer:channel, e.g. mixed4a:12")
    if len(ids) > MAX_MASK:
        raise MassifError(f"a mask of {len(ids)} neurons is too long (at most {MAX_MASK})")
    layers = list(layer_order or layer_channels)
    chosen: dict[str, set[int]] = {}
    for nid in ids:
        layer, sep, channel = nid.rpartition(":")
        # ASCII digits only: "+1", " 1", "１" (full width) are not channel numbers
        if not sep or not layer or not is_index(channel):
            raise MassifError(f"{short(nid)} is not a neuron id; use layer:channel, e.g. "
                              f"{(layers or ['mixed4a'])[0]}:12")
        if layer not in layer_channels:
            raise did_you_mean(layer, layers, "layer")
        n, c = layer_channels[layer], int(channel)
        if c >= n:
            raise MassifError(f"neuron {nid}: layer {layer} has channels 0..{n - 1}")
        chosen.setdefault(layer, set()).add(c)
    for layer, chans in chosen.items():
        if len(chans) >= layer_channels[layer] and not whole_layer_ok:
            raise MassifError(f"the mask would delete the whole layer {layer} (all "
                              f"{layer_channels[layer]} channels); leave at least one")
    return {lay: sorted(chosen[lay]) for lay in layers if lay in chosen}


def mask_ids(channels: dict[str, list[int]]) -> list[str]:
    """``{layer: channels}`` → ids ``layer:channel``, in the given order."""
    return [f"{lay}:{c}" for lay, chans in channels.items() for c in chans]


class MaskedModel(nn.Module):
    """``net`` with channels masked on every forward pass (through ``hooks.mask``, so nothing
    stays registered between calls). ``channels``: module path → channel list; ``values``:
    module path → ``[C]`` fill (``None``: zero). Fill values are buffers, so ``.to(device)``
    moves them along."""

    def __init__(self, net: nn.Module, channels: dict[str, list[int]],
                 values: dict[str, torch.Tensor] | None = None,
                 mask_list: Sequence[str] = (), units: dict[str, Units] | None = None) -> None:
        super().__init__()
        self.net = net
        self.units = dict(units or {})  # module path → units (default: channels)
        self.channels = {p: sorted(set(int(c) for c in ch)) for p, ch in channels.items()}
        self.neurons = list(mask_list)  # the deleted neurons' ids
        self._fill_names: dict[str, str] = {}
        for i, (path, v) in enumerate((values or {}).items()):
            get_module(net, path)
            name = f"fill_{i}"
            self.register_buffer(name, torch.as_tensor(v, dtype=torch.float32).clone())
            self._fill_names[path] = name
        for path in self.channels:
            get_module(net, path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fills = {p: getattr(self, n) for p, n in self._fill_names.items()} or None
        with mask(self.net, self.channels, fills, self.units):
            return self.net(x)


def apply_mask(module: nn.Module, exported: dict | str | Path, *,
               layers: dict[str, str] | None = None, load_weights: bool = True) -> MaskedModel:
    """Rebuild an edited model from ``Editor.export``'s file (or its loaded dict).

    ``module`` is a fresh instance of the same architecture as the analysed model's module
    (for the bundled model ``massif.bundled.net.FashionInception()``); its weights are loaded
    from the file unless ``load_weights=False``. ``layers`` overrides the file's layer name →
    module path map (e.g. when your module nests the network differently). Returns a
    ``MaskedModel`` whose ``forward`` is the edited model's. Without MASSIF, the same is a
    forward hook per masked layer: ``out[:, chans] = 0`` (or ``= values[layer][chans]``)::

        state = torch.load("edited.pt", weights_only=True)
        net.load_state_dict(state["state_dict"])
        for nid in state["mask"]:
            layer, c = nid.rsplit(":", 1)
            ...  # register_forward_hook on net.get_submodule(state["layers"][layer])
    """
    if not isinstance(exported, dict):
        try:
            exported = torch.load(Path(exported), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds for a missing, corrupt or foreign file
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise MassifError(f"cannot load the edited model {exported}: {first}") from None
    check_export(exported)
    if not isinstance(module, nn.Module):
        raise MassifError(f"module must be a fresh nn.Module of the analysed architecture, not "
                          f"{type(module).__name__}")
    paths = dict(exported["layers"])
    paths.update(layers or {})
    if load_weights:
        try:
            module.load_state_dict(exported["state_dict"])
        except RuntimeError as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            raise MassifError("the edited model's weights do not fit this module: "
                              f"{lines[1] if len(lines) > 1 else lines[0]}") from None
    channels: dict[str, list[int]] = {}
    for nid in exported["mask"]:
        layer, _, c = str(nid).rpartition(":")
        if layer not in paths:
            raise did_you_mean(layer, list(paths), "layer")
        channels.setdefault(paths[layer], []).append(int(c))
    values = {paths[lay]: v for lay, v in (exported.get("values") or {}).items()}
    if exported.get("mode") == "mean" and set(values) != set(channels):
        raise MassifError("the edited model's file lacks fill values for mode mean")
    units = {}
    for lay, layout in (exported.get("layouts") or {}).items():
        if lay not in paths:
            raise did_you_mean(lay, list(paths), "layer")
        _, base, prefix = parse_layer(f"{lay}@{layout}")
        units[paths[lay]] = Units(base or "channels", 0, prefix)
    return MaskedModel(module, channels, values or None, exported["mask"], units)


def check_export(exported: object) -> None:
    """Refuse anything but an edited model's dict (``ExportHeader`` plus tensors)."""
    if not isinstance(exported, dict) or exported.get("format") != EXPORT_FORMAT:
        raise MassifError("not an edited model written by massif (Editor.export)")
    tensors = {k: exported.get(k) for k in ("state_dict", "values")}
    try:
        ExportHeader.model_validate({k: v for k, v in exported.items() if k not in tensors})
    except ValidationError as e:
        raise MassifError(f"the edited model's file is damaged: {first_error(e)}") from None
    for key, value in tensors.items():
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
            raise MassifError(f"the edited model's file is damaged: {key} must map names to "
                              "tensors")


def export_edited(path: str | Path | io.BytesIO, net: nn.Module,
                  channels: dict[str, list[int]], fills: dict[str, torch.Tensor] | None,
                  paths: dict[str, str], mode: str, model_name: str,
                  fingerprint: str, units: dict[str, Units] | None = None
                  ) -> Path | io.BytesIO:
    """Write the edited model's file atomically (see ``Editor.export``), or into a binary
    buffer. ``channels``: display layer → channels; ``fills``: module path → ``[C]`` fill
    (mode ``mean``) or ``None``; ``units``: display layer → units (the layouts other than
    ``channels`` are written as ``layouts``, so ``apply_mask`` deletes on the right axis)."""
    if not isinstance(path, io.BytesIO):
        path = writable_file(path, "export file")
    payload = {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "mask": mask_ids(channels), "mode": mode,
        "values": {lay: fills[paths[lay]].detach().cpu().clone() for lay in channels}
        if fills else {},
        "layers": dict(paths), "model": model_name, "fingerprint": fingerprint,
    }
    layouts = {lay: u.describe() for lay, u in (units or {}).items() if u.layout != "channels"}
    if layouts:
        payload["layouts"] = layouts
    check_export(payload)
    if isinstance(path, io.BytesIO):
        torch.save(payload, path)
        return path
    buf = io.BytesIO()
    torch.save(payload, buf)
    try:
        return write_atomic(path, buf.getvalue())
    except OSError as e:
        raise MassifError(f"cannot write {path}: {e.strerror or e}") from None
