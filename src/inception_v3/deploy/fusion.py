"""Batch norm folded into the preceding convolution, for inference (PyTorch's fuse_conv_bn_eval)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.inception import Inception3
from ..models.layers import ConvBN


@torch.no_grad()
def fold_batchnorm(model: Inception3) -> Inception3:
    """An eval-mode copy in which every conv + BN pair is one conv with a bias (same outputs)."""
    folded = copy.deepcopy(model).eval()
    for m in folded.modules():
        if isinstance(m, ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = fuse_conv_bn_eval(m.conv, m.bn), nn.Identity()
    return folded
