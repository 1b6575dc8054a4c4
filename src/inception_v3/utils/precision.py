"""Mixed precision: one autocast helper for training, evaluation and batch-norm recomputation."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_MODES = ("none", "bf16", "fp16")


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast for `amp` in {"none", "bf16", "fp16"} on `device`."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
