"""Devices: resolving `--device`, and moving what is saved to the CPU (so any machine can read it)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when there is one), `cpu`, `cuda` or `cuda:N`; a CUDA request without CUDA is one line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"invalid `device` {name!r}; valid values: {', '.join(DEVICES)}") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"invalid `device` {name!r}; valid values: {', '.join(DEVICES)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"`device={name!r}` was asked for but no CUDA device is available; use `device='cpu'`")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(
            f"`device={name!r}`: there is no such GPU ({torch.cuda.device_count()} visible: cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1})"
        )
    return device


def to_cpu(obj: Any) -> Any:
    """`obj` with every tensor in it (nested in dicts, lists and tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def model_device(model: torch.nn.Module) -> torch.device:
    """Where `model`'s weights are (the CPU for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")
