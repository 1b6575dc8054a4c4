"""The training loss: label-smoothed cross entropy (Section 7) on the main and the aux logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..models.inception import InceptionOutputs


def smoothed_cross_entropy(logits: Tensor, target: Tensor, smoothing: float) -> Tensor:
    """H(q', p) = (1 - eps) H(q, p) + eps H(u, p), with u uniform over the K classes."""
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def inception_loss(out: InceptionOutputs, target: Tensor, smoothing: float, aux_weight: float) -> Tensor:
    """Main loss plus `aux_weight` times the aux loss (TF-slim: 0.4), both label-smoothed."""
    loss = smoothed_cross_entropy(out.logits, target, smoothing)
    if out.aux_logits is not None and aux_weight > 0:
        loss = loss + aux_weight * smoothed_cross_entropy(out.aux_logits, target, smoothing)
    return loss
