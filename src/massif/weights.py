"""Weights files: a state dict read with ``torch.load(weights_only=True)`` and put into a module,
each failure said in one line (a folder, a file that is not PyTorch's, an edited model, tensors
that do not fit)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import MassifError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (also under a checkpoint's ``state_dict``, ``model_state_dict``
    or ``model`` key)."""
    path = Path(path)
    if path.is_dir():
        raise MassifError(f"weights {path} is a folder, not a file of weights")
    if not path.is_file():
        raise MassifError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":  # Hugging Face's format (safetensors comes with it)
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise MassifError(f"cannot load weights {path}: pip install safetensors") from None
    except Exception as e:  # torch raises many kinds for a corrupt or foreign file
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        if "weights_only" in str(e) or "Weights only load failed" in str(e):
            first = "not a plain state dict of tensors (MASSIF loads with weights_only=True)"
        else:  # pickle's own words can be a bare number or key: say what the file is not
            first = f"not a PyTorch weights file ({type(e).__name__}: {first})"
        raise MassifError(f"cannot load weights {path}: {first}") from None
    if isinstance(state, dict) and isinstance(state.get("format"), str) \
            and state["format"].startswith("massif-edited"):
        raise MassifError(
            f"{path} is an edited model written by massif edit --export; --weights would drop "
            f"its {len(state.get('mask') or [])} deleted neurons: give the original weights, "
            "or load the edited model in Python with massif.apply_mask")
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MassifError(f"weights file {path} does not hold a state dict of tensors")
    return state


def apply_weights(module: nn.Module, path: str | Path) -> None:
    """Load ``path``'s state dict into ``module``; tensors that do not fit are one line."""
    state = load_state_dict(path)
    try:
        module.load_state_dict(state)
    except RuntimeError:
        raise MassifError(f"weights {path} do not fit the model: {misfit(module, state)}"
                          ) from None


def misfit(module: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Why ``state`` does not load into ``module``, in a line: counts and the first names."""
    want = module.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(want[k].shape) != tuple(state[k].shape)]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("of another shape", shapes)):
        if keys:
            names = ", ".join(k[:40] for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {what} ({names})")
    return "; ".join(parts) or "the tensors do not fit"
