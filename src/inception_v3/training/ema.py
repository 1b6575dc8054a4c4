"""Running average of the parameters (Section 8: "model evaluations use a running average")."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of a model's parameters and batch-norm buffers. With `warmup`, the decay
    used at update t is min(decay, (1 + t) / (10 + t)), so a short run is not dominated by the random initialization."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (one fused lerp over all floating-point tensors); integer
        buffers (BN's batch counter) are copied."""
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values(), strict=True))
        floats = [(a, v) for a, v in pairs if v.dtype.is_floating_point]
        torch._foreach_lerp_([a for a, _ in floats], [v for _, v in floats], 1.0 - self.current_decay())
        for a, v in pairs:
            if not v.dtype.is_floating_point:
                a.copy_(v)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "decay": self.decay, "warmup": self.warmup, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.decay, self.warmup, self.updates = state["decay"], state["warmup"], state["updates"]
