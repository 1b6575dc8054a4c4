"""Evaluation: top-1 / top-5 accuracy, loss and calibration over a data loader (single crop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

ECE_BINS = 15


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
    """Top-1/top-5 accuracy, mean loss, ECE (15 bins), and (with `num_classes`) the confusion matrix as counts.

    Under torch.distributed the counts are summed over all ranks, so every rank returns the totals.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # n, top1, top5, loss
    confusion = torch.zeros(num_classes or 1, num_classes or 1, dtype=torch.long, device=device)
    calibration = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=device)  # count, confidence, correct
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
        conf = logits.softmax(1).max(1).values.double()
        bins = (conf * ECE_BINS).ceil().long().clamp(1, ECE_BINS) - 1
        for row, values in enumerate((torch.ones_like(conf), conf, correct[:, 0].double())):
            calibration[row].index_add_(0, bins, values)
        if num_classes:
            confusion += torch.bincount(y * num_classes + top5[:, 0], minlength=num_classes**2).view_as(confusion)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(confusion)
        torch.distributed.all_reduce(calibration)
    model.train(was_training)
    n = max(sums[0].item(), 1.0)
    result: dict[str, Any] = {"n": int(sums[0].item()), "top1": sums[1].item() / n, "top5": sums[2].item() / n,
                              "loss": sums[3].item() / n,
                              "ece": float((calibration[1] - calibration[2]).abs().sum().item() / n)}  # fmt: skip
    if num_classes:
        result["confusion"] = confusion.cpu().tolist()
    return result


# ----------------------------------------------------------------------------- the paper's protocols
def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = ECE_BINS
                               ) -> tuple[float, list[dict[str, float]]]:  # fmt: skip
    """ECE over `bins` equal-width confidence bins, and the per-bin (confidence, accuracy, count)."""
    conf, pred = probs.max(1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        inside = (conf > lo) & (conf <= hi)
        n = int(inside.sum())
        if n:
            gap = abs(float(correct[inside].mean()) - float(conf[inside].mean()))
            ece += gap * n / len(labels)
            table.append({"low": lo, "high": hi, "confidence": float(conf[inside].mean()),
                          "accuracy": float(correct[inside].mean()), "count": n})  # fmt: skip
    return ece, table


def classification_metrics(probs: Tensor, labels: Tensor, classes: list[str]) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error, per-class accuracy, confusion matrix, ECE."""
    k = probs.shape[1]
    top5 = probs.topk(min(5, k), dim=1).indices
    hit = top5 == labels[:, None]
    confusion = torch.bincount(labels * k + top5[:, 0], minlength=k * k).view(k, k)
    per_class = {c: float(confusion[i, i]) / max(int(confusion[i].sum()), 1) for i, c in enumerate(classes)}
    ece, bins = expected_calibration_error(probs, labels)
    top1, top5_acc = float(hit[:, 0].float().mean()), float(hit.any(1).float().mean())
    return {"n": len(labels), "top1": top1, "top5": top5_acc, "top1_error": 1 - top1, "top5_error": 1 - top5_acc,
            "ece": ece, "per_class": per_class, "confusion": confusion.tolist(), "calibration": bins}  # fmt: skip
