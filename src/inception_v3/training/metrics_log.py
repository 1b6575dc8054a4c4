"""Running training metrics kept on the device, so a step does not wait for it; read when logging."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor


class EpochMeter:
    """Sums of loss and correct predictions over this replica's images of the current epoch, and the
    last step's loss and gradient norm."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss x images, correct
        self.last = torch.zeros(2, dtype=torch.float32, device=device)  # loss, gradient norm
        self.seen, self.lr, self.started = 0, 0.0, time.time()

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor, grad_norm: Tensor, lr: float) -> None:
        correct = (logits.argmax(1) == labels).sum()
        self.sums += torch.stack([loss.double() * len(labels), correct.double()])
        self.last.copy_(torch.stack([loss.float(), grad_norm.float()]))
        self.seen += len(labels)
        self.lr = lr

    def rate(self, world: int) -> float:
        """Images per second over all replicas since the epoch (or the resumed part of it) began."""
        return self.seen * world / max(time.time() - self.started, 1e-9)

    def step_summary(self, world: int) -> dict[str, Any]:
        loss, grad_norm = self.last.tolist()  # one read from the device
        return {
            "lr": self.lr,
            "loss": loss,
            "train_acc": float(self.sums[1]) / max(self.seen, 1),
            "grad_norm": grad_norm,
            "img_s": self.rate(world),
        }

    def epoch_summary(self, world: int) -> tuple[float, float, float]:
        """Mean training loss, running accuracy, images per second."""
        loss_sum, correct = self.sums.tolist()
        n = max(self.seen, 1)
        return loss_sum / n, correct / n, self.rate(world)
