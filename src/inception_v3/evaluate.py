"""Evaluation: top-1 / top-5 accuracy and loss over a data loader (single crop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast for `amp` in {"none", "bf16", "fp16"} on `device`."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor, int]],
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
    desc: str | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy, mean loss, and (with `num_classes`) the confusion matrix as counts.

    Under torch.distributed the counts are summed over all ranks, so every rank returns the totals.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # n, top1, top5, loss
    confusion = torch.zeros(num_classes or 1, num_classes or 1, dtype=torch.long, device=device)
    for x, y, _ in tqdm(batches, desc=desc, leave=False, disable=desc is None, unit="batch"):
        if len(y) == 0:
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(x).float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct = top5 == y[:, None]
        sums += torch.stack([
            torch.tensor(float(len(y)), device=device, dtype=torch.float64),
            correct[:, 0].sum().double(),
            correct.any(1).sum().double(),
            F.cross_entropy(logits, y, reduction="sum").double(),
        ])  # fmt: skip
        if num_classes:
            confusion += torch.bincount(y * num_classes + top5[:, 0], minlength=num_classes**2).view_as(confusion)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(confusion)
    model.train(was_training)
    n = max(sums[0].item(), 1.0)
    result: dict[str, Any] = {"n": int(sums[0].item()), "top1": sums[1].item() / n, "top5": sums[2].item() / n,
                              "loss": sums[3].item() / n}  # fmt: skip
    if num_classes:
        result["confusion"] = confusion.cpu().tolist()
    return result
