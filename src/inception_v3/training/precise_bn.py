"""Exact batch-norm statistics before evaluation ("precise BN").

Running averages with momentum lag behind weights that move fast (high learning rates, short runs,
narrow models), and the running average of the weights averages batch-norm buffers that belong to
other weights. Either can make eval-mode outputs collapse although training goes well. Recomputing
each batch norm's mean and variance as the plain average over a fixed set of training batches, with
the current weights, removes both problems.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..utils.precision import Compute


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor, Any]], compute: Compute) -> int:
    """Set every batch norm's running mean/var to their average over `batches`; returns the images used.

    Only the batch norms run in training mode (dropout stays off, so no random numbers are drawn);
    the aux head's batch norms see its input too. Under torch.distributed the statistics are averaged
    over the replicas. If no batch had images, or any recomputed statistic is not finite (diverged
    weights), the previous statistics are kept and 0 is returned.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    previous = [{k: v.clone() for k, v in m.state_dict().items() if k != "weight" and k != "bias"} for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    seen = 0
    forward = getattr(model, "forward_with_aux", model)
    for x, _, _ in batches:
        if not _every_replica_has_images(len(x), compute.device):  # all skip together: sync BN's collectives pair up
            continue
        with compute.autocast():
            forward(compute.input(x))
        seen += len(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for m in norms:
            for buffer in (m.running_mean, m.running_var):
                assert buffer is not None  # BN layers that track running statistics
                dist.all_reduce(buffer)
                buffer.div_(dist.get_world_size())
    model.train(was_training)
    if seen == 0 or not all(
        torch.isfinite(m.running_mean).all() and torch.isfinite(m.running_var).all()  # type: ignore[arg-type]
        for m in norms
    ):
        for m, state in zip(norms, previous, strict=True):
            m.load_state_dict(state, strict=False)
        return 0
    return seen


def _every_replica_has_images(n: int, device: torch.device) -> bool:
    """Whether this batch (of `n` readable images) and every other replica's are non-empty."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return n > 0
    flag = torch.tensor([float(n > 0)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
