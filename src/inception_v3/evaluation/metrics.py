"""Classification metrics: top-1/top-5, loss, per-class accuracy, confusion matrix, and calibration.

Calibration uses one binning (`calibration_sums`: 15 equal-width confidence bins, right-closed) for
both the streamed metrics of `evaluate` (training validation, summed over replicas) and the full
table of `classification_metrics`, so there is one expected calibration error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.precision import Compute
from ..utils.progress import progress_bar

ECE_BINS = 15


def calibration_sums(probs: Tensor, labels: Tensor, bins: int = ECE_BINS) -> Tensor:
    """3 x bins float64 sums per confidence bin: count, confidence, correct (bin k holds (k/bins, (k+1)/bins])."""
    conf, pred = probs.max(1)
    conf = conf.double()
    index = (conf * bins).ceil().long().clamp(1, bins) - 1
    sums = torch.zeros(3, bins, dtype=torch.float64, device=probs.device)
    for row, values in enumerate((torch.ones_like(conf), conf, (pred == labels).double())):
        sums[row].index_add_(0, index, values)
    return sums


def expected_calibration_error(sums: Tensor) -> float:
    """ECE = sum over bins of |confidence - accuracy| weighted by the bin's share of the images."""
    n = max(float(sums[0].sum()), 1.0)
    return float((sums[1] - sums[2]).abs().sum()) / n


def calibration_table(sums: Tensor) -> list[dict[str, float]]:
    """Per non-empty bin: its edges, mean confidence, accuracy and count (the reliability diagram)."""
    bins = sums.shape[1]
    return [
        {"low": k / bins, "high": (k + 1) / bins, "confidence": conf / n, "accuracy": correct / n, "count": int(n)}
        for k, (n, conf, correct) in enumerate(sums.T.tolist())
        if n > 0
    ]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor, Any]],
    compute: Compute,
    desc: str | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy, mean loss, ECE and (with `num_classes`) the confusion matrix, streamed over
    `batches` of (images, labels, _) on `compute`'s device. Under torch.distributed the sums cover all replicas."""
    device = compute.device
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # n, top1, top5, loss
    confusion = torch.zeros(num_classes or 1, num_classes or 1, dtype=torch.long, device=device)
    calibration = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=device)
    for x, y, _ in progress_bar(batches, desc=desc, leave=False, disable=desc is None, unit="batch"):
        if len(y) == 0:
            continue
        x, y = compute.input(x), y.to(device, non_blocking=True)
        with compute.autocast():
            logits = model(x).float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct = top5 == y[:, None]
        sums[0] += len(y)
        sums[1] += correct[:, 0].sum()
        sums[2] += correct.any(1).sum()
        sums[3] += F.cross_entropy(logits, y, reduction="sum").double()
        calibration += calibration_sums(logits.softmax(1), y)
        if num_classes:
            confusion += torch.bincount(y * num_classes + top5[:, 0], minlength=num_classes**2).view_as(confusion)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for t in (sums, confusion, calibration):
            torch.distributed.all_reduce(t)
    model.train(was_training)
    count, top1, top5, loss = sums.tolist()
    n = max(count, 1.0)
    result: dict[str, Any] = {"n": int(count), "top1": top1 / n, "top5": top5 / n, "loss": loss / n}
    result["ece"] = expected_calibration_error(calibration)
    if num_classes:
        result["confusion"] = confusion.cpu().tolist()
    return result


def classification_metrics(probs: Tensor, labels: Tensor, classes: list[str]) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error, per-class accuracy, confusion matrix, ECE and its bins."""
    k = probs.shape[1]
    top5 = probs.topk(min(5, k), dim=1).indices
    hit = top5 == labels[:, None]
    confusion = torch.bincount(labels * k + top5[:, 0], minlength=k * k).view(k, k)
    per_class = {c: float(confusion[i, i]) / max(int(confusion[i].sum()), 1) for i, c in enumerate(classes)}
    sums = calibration_sums(probs, labels)
    accuracy = {"top1": float(hit[:, 0].float().mean()), "top5": float(hit.any(1).float().mean())}
    return {
        "n": len(labels),
        **accuracy,
        **{f"{name}_error": 1 - value for name, value in accuracy.items()},
        "ece": expected_calibration_error(sums),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "calibration": calibration_table(sums),
    }
