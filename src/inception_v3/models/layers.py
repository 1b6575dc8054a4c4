"""The layers the blocks are made of: conv + batch norm + ReLU, input normalization, TF-slim init."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import InceptionConfig

Size = int | tuple[int, int]


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm + ReLU; `relu=False` gives the linear variant of Section 3.1.

    With `bn=False` the conv gets a bias instead (the aux head of Inception-v2, before BN-auxiliary).
    """

    def __init__(
        self,
        cfg: InceptionConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        padding: Size = 0,
        relu: bool = True,
        bn: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not bn)
        self.bn = nn.BatchNorm2d(out_channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum) if bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class InputNorm(nn.Module):
    """(x - mean) / std with the statistics stored in the state_dict (no hidden state)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std  # type: ignore[operator]  # buffers: mypy sees Module attributes


# TF-slim's standard deviations where they differ from the default 0.1.
INIT_STD = {"AuxLogits.conv1.conv": 0.01, "AuxLogits.fc": 0.001}


@torch.no_grad()
def init_weights(model: nn.Module, only: tuple[str, ...] | None = None) -> None:
    """TF-slim initialization: truncated normal std 0.1 (aux conv1 0.01, aux fc 0.001), zero biases,
    batch norm gamma 1 and beta 0; `only` limits it to the named modules."""
    for name, m in model.named_modules():
        if only is not None and name not in only:
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            std = INIT_STD.get(name, 0.1)  # TF's truncated normal cuts at +-2 std; PyTorch's bounds are absolute
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
