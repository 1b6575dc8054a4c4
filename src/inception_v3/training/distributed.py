"""Processes and devices: joining a torchrun job, agreeing across replicas, synchronized batch norm.

PyTorch's SyncBatchNorm runs only on GPUs; `GlooSyncBatchNorm` does the same on CPUs (gloo), so a
CPU job of N replicas computes exactly what one process with N times the batch would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..utils.devices import resolve_device


@dataclass
class Dist:
    """Where this process stands: its rank, the number of replicas, its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group if there is one (NCCL on GPUs, gloo on CPUs)."""
    use_cuda = resolve_device(device).type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if restart is None:
            dist.init_process_group(backend)
        else:  # torchrun keeps its store across restarts: a fresh key prefix per attempt, so that a restarted
            # replica never reads the address a killed one published (gloo then connects to a dead port)
            store, rank, world = next(dist.rendezvous("env://"))
            store = dist.PrefixStore(f"inception-v3/attempt-{restart}/", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return Dist(rank, world, local_rank, torch.device("cuda", local_rank))
    if world > 1:  # replicas on one machine share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return Dist(rank, world, local_rank, torch.device("cpu"))


def any_rank_flags(flags: list[Tensor], d: Dist) -> list[bool]:
    """Whether each 0-d flag is set on any replica: one all-reduce and one host read for all of them."""
    t = torch.stack([f.to(torch.float32) for f in flags])
    if d.world > 1:
        dist.all_reduce(t)
    code = int(((t > 0).to(torch.int64) << torch.arange(len(flags), device=t.device)).sum())
    return [bool(code >> i & 1) for i in range(len(flags))]


class _AllReduceSum(torch.autograd.Function):
    """Sum over replicas; the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    backward = forward  # (ctx, grad) -> grad summed over replicas


def all_reduce(t: Tensor) -> Tensor:
    """Differentiable sum of `t` over all replicas."""
    return _AllReduceSum.apply(t)


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are summed over all replicas (any backend, CPU too)."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # Two passes (mean, then squared deviations) keep the variance accurate in float32.
        c = x.shape[1]
        xf = x.float()
        count = torch.full((1,), xf.numel() // c, dtype=torch.float32, device=x.device)
        sums = all_reduce(torch.cat([xf.sum((0, 2, 3)), count]))
        n: Tensor = sums[-1]
        mean = sums[:c] / n
        centered = xf - mean[None, :, None, None]
        var = all_reduce((centered * centered).sum((0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                tracked = self.num_batches_tracked
                assert tracked is not None  # tracking running statistics
                tracked.add_(1)
                # momentum None: the cumulative average (as PyTorch's BatchNorm does)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        y = centered * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> None:
    """Swap every BatchNorm2d for a synchronized one in place: names, state_dict, training mode and frozen
    parameters (`requires_grad`, e.g. from --freeze-until) unchanged."""
    cls = nn.SyncBatchNorm if device.type == "cuda" else GlooSyncBatchNorm
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                sync = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                sync.load_state_dict(child.state_dict())
                for p_name, p in child.named_parameters(recurse=False):
                    sync.get_parameter(p_name).requires_grad_(p.requires_grad)
                setattr(parent, name, sync.to(device).train(child.training))
