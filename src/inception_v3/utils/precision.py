"""How a network runs: the device, mixed precision and the memory format, one helper for training, evaluation
and batch-norm recomputation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

AMP_MODES = ("none", "bf16", "fp16")


@dataclass(frozen=True)
class Compute:
    """Where and how a network runs: `device`, mixed precision `amp` ("none", "bf16", "fp16"), `channels_last`."""

    device: torch.device
    amp: str = "none"
    channels_last: bool = False

    def input(self, x: Tensor) -> Tensor:
        """A batch moved to the device, in the memory format."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)
