"""Helpers shared by the tests."""

import torch
from torch import nn


@torch.no_grad()
def realistic_bn(model: nn.Module, size: int, passes: int = 3, batch: int = 4, channels: int = 3) -> nn.Module:
    """Give a randomly initialized model the batch-norm statistics of real use (a few forward passes in
    training mode on image-like inputs in [-1, 1]), then put it in eval mode."""
    g = torch.Generator().manual_seed(0)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # the plain average of the passes
    for _ in range(passes):
        model(torch.rand(batch, channels, size, size, generator=g) * 2 - 1)
    return model.eval()
