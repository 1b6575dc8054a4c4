"""The network's building blocks, named after the TF-slim checkpoint (as torchvision and timm are).

Figure numbers refer to the paper. Every block takes the model config, so width scaling
(`width_multiplier`, `min_depth`) and the Section 3.1 activation choice apply everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import InceptionConfig
from .layers import ConvBN


def _factorized_relu(cfg: InceptionConfig) -> bool:
    """Whether the first layer of a factorized pair has a ReLU (Section 3.1: it should)."""
    return cfg.factorized_activation == "relu"


class Mixed35(nn.Module):
    """Figure 5 block on the 35x35 grid (Mixed_5b/5c/5d): the 5x5 conv factorized into two 3x3."""

    def __init__(self, cfg: InceptionConfig, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=cfg.pool_include_pad)
        d, pair_relu = cfg.depth, _factorized_relu(cfg)
        self.branch1x1 = ConvBN(cfg, in_channels, d(64), 1)
        self.branch5x5_1 = ConvBN(cfg, in_channels, d(48), 1)
        self.branch5x5_2 = ConvBN(cfg, d(48), d(64), 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cfg, in_channels, d(64), 1)
        self.branch3x3dbl_2 = ConvBN(cfg, d(64), d(96), 3, padding=1, relu=pair_relu)
        self.branch3x3dbl_3 = ConvBN(cfg, d(96), d(96), 3, padding=1)
        self.branch_pool = ConvBN(cfg, in_channels, d(pool_features), 1)
        self.out_channels = d(64) + d(64) + d(96) + d(pool_features)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # N x 64 x 35 x 35
        b5 = self.branch5x5_2(self.branch5x5_1(x))  # N x 64 x 35 x 35
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # N x 96 x 35 x 35
        bp = self.branch_pool(self.pool(x))  # N x pool_features x 35 x 35
        return torch.cat([b1, b5, b3, bp], 1)  # N x 256|288 x 35 x 35


class Reduction35to17(nn.Module):
    """Figure 10 grid reduction 35x35 -> 17x17 (Mixed_6a): stride-2 convs beside a stride-2 pool."""

    def __init__(self, cfg: InceptionConfig, in_channels: int) -> None:
        super().__init__()
        d, pair_relu = cfg.depth, _factorized_relu(cfg)
        self.branch3x3 = ConvBN(cfg, in_channels, d(384), 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cfg, in_channels, d(64), 1)
        self.branch3x3dbl_2 = ConvBN(cfg, d(64), d(96), 3, padding=1, relu=pair_relu)
        self.branch3x3dbl_3 = ConvBN(cfg, d(96), d(96), 3, stride=2)
        self.out_channels = d(384) + d(96) + in_channels

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)  # N x 384 x 17 x 17
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # N x 96 x 17 x 17
        bp = F.max_pool2d(x, 3, stride=2)  # N x 288 x 17 x 17
        return torch.cat([b3, bd, bp], 1)  # N x 768 x 17 x 17


class Mixed17(nn.Module):
    """Figure 6 block on the 17x17 grid (Mixed_6b..6e): 7x7 convs factorized into 1x7 and 7x1."""

    def __init__(self, cfg: InceptionConfig, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=cfg.pool_include_pad)
        d, pair_relu = cfg.depth, _factorized_relu(cfg)
        c7 = d(channels_7x7)
        self.branch1x1 = ConvBN(cfg, in_channels, d(192), 1)
        self.branch7x7_1 = ConvBN(cfg, in_channels, c7, 1)
        self.branch7x7_2 = ConvBN(cfg, c7, c7, (1, 7), padding=(0, 3), relu=pair_relu)
        self.branch7x7_3 = ConvBN(cfg, c7, d(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cfg, in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN(cfg, c7, c7, (7, 1), padding=(3, 0), relu=pair_relu)
        self.branch7x7dbl_3 = ConvBN(cfg, c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(cfg, c7, c7, (7, 1), padding=(3, 0), relu=pair_relu)
        self.branch7x7dbl_5 = ConvBN(cfg, c7, d(192), (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cfg, in_channels, d(192), 1)
        self.out_channels = 4 * d(192)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # N x 192 x 17 x 17
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # N x 192 x 17 x 17
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))  # N x c7 x 17 x 17
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))  # N x 192 x 17 x 17
        bp = self.branch_pool(self.pool(x))  # N x 192 x 17 x 17
        return torch.cat([b1, b7, bd, bp], 1)  # N x 768 x 17 x 17


class Reduction17to8(nn.Module):
    """Figure 10 grid reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, cfg: InceptionConfig, in_channels: int) -> None:
        super().__init__()
        d, pair_relu = cfg.depth, _factorized_relu(cfg)
        self.branch3x3_1 = ConvBN(cfg, in_channels, d(192), 1)
        self.branch3x3_2 = ConvBN(cfg, d(192), d(320), 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cfg, in_channels, d(192), 1)
        self.branch7x7x3_2 = ConvBN(cfg, d(192), d(192), (1, 7), padding=(0, 3), relu=pair_relu)
        self.branch7x7x3_3 = ConvBN(cfg, d(192), d(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(cfg, d(192), d(192), 3, stride=2)
        self.out_channels = d(320) + d(192) + in_channels

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # N x 320 x 8 x 8
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))  # N x 192 x 17 x 17
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))  # N x 192 x 8 x 8
        bp = F.max_pool2d(x, 3, stride=2)  # N x 768 x 8 x 8
        return torch.cat([b3, b7, bp], 1)  # N x 1280 x 8 x 8


class Mixed8(nn.Module):
    """Figure 7 block on the 8x8 grid (Mixed_7b/7c): expanded filter banks, 3x3 split into 1x3 | 3x1."""

    def __init__(self, cfg: InceptionConfig, in_channels: int, max_pool: bool = False) -> None:
        super().__init__()
        average = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=cfg.pool_include_pad)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else average
        d = cfg.depth
        self.branch1x1 = ConvBN(cfg, in_channels, d(320), 1)
        self.branch3x3_1 = ConvBN(cfg, in_channels, d(384), 1)
        self.branch3x3_2a = ConvBN(cfg, d(384), d(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(cfg, d(384), d(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cfg, in_channels, d(448), 1)
        self.branch3x3dbl_2 = ConvBN(cfg, d(448), d(384), 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(cfg, d(384), d(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(cfg, d(384), d(384), (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cfg, in_channels, d(192), 1)
        self.out_channels = d(320) + 4 * d(384) + d(192)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # N x 320 x 8 x 8
        b3 = self.branch3x3_1(x)  # N x 384 x 8 x 8
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)  # N x 768 x 8 x 8
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))  # N x 384 x 8 x 8
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)  # N x 768 x 8 x 8
        bp = self.branch_pool(self.pool(x))  # N x 192 x 8 x 8
        return torch.cat([b1, b3, bd, bp], 1)  # N x 2048 x 8 x 8


class AuxHead(nn.Module):
    """Figure 8 auxiliary classifier on top of the last 17x17 layer (Mixed_6e); `conv1` is the paper's
    "fully connected" 768 layer, which BN-auxiliary batch-normalizes."""

    def __init__(self, cfg: InceptionConfig, in_channels: int) -> None:
        super().__init__()
        d = cfg.depth
        self.conv0 = ConvBN(cfg, in_channels, d(128), 1)
        self.conv1 = ConvBN(cfg, d(128), d(768), 5, bn=cfg.aux_bn)
        self.fc = nn.Linear(d(768), cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 5, stride=3)  # N x 768 x 5 x 5
        x = self.conv0(x)  # N x 128 x 5 x 5
        x = self.conv1(x)  # N x 768 x 1 x 1
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # N x 768
        return self.fc(x)  # N x num_classes
