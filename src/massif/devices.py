"""Which device a run uses: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked once against what
PyTorch sees. A ground-floor module (it needs only ``errors``), so models, requests, pictures
and the command line all ask it without importing each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import MassifError, short

if TYPE_CHECKING:
    import torch


def resolve_device(device: Any) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.dtype):
        raise MassifError(f"{device} is a dtype, not a device; use auto, cpu, cuda or cuda:N")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MassifError(f"unknown device {short(device)} ({first[:100]}); use auto, cpu, "
                          "cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MassifError("device cuda asked for, but PyTorch sees no CUDA GPU")
    if dev.type not in ("cpu", "cuda"):
        raise MassifError(f"device {short(device)} is not supported; use auto, cpu, cuda or "
                          "cuda:N")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MassifError(f"device {dev} does not exist: PyTorch sees "
                          f"{torch.cuda.device_count()} GPU(s)")
    return dev
