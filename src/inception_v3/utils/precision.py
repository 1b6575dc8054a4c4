"""How a network runs: the device, mixed precision and the memory format, one helper for training, evaluation
and batch-norm recomputation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

AMP_MODES = ("auto", "none", "bf16", "fp16")


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bf16 convolutions natively (AVX512-BF16/AMX on CPUs, Ampere+ on GPUs)."""
    if device.type == "cuda":  # is_bf16_supported() is also true on older GPUs, which emulate bf16 slowly
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_amp(amp: str, device: torch.device) -> str:
    """`amp` with "auto" made concrete: "bf16" where `device` runs it natively, else "none" (emulated bf16
    trains several times slower than fp32: 4.5x for the suite's small models on a Zen 3 EPYC)."""
    if amp != "auto":
        return amp
    return "bf16" if bf16_supported(device) else "none"


@dataclass(frozen=True)
class Compute:
    """Where and how a network runs: `device`, mixed precision `amp` ("none", "bf16", "fp16"; "auto" resolved
    beforehand by `resolve_amp`), `channels_last`."""

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
