"""An int8 post-training-quantized model for x86 CPUs (PyTorch's FX graph-mode static quantization):
conv + BN + ReLU fused, activations calibrated on a few hundred real images."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..models.inception import Inception3
from .fusion import fold_batchnorm


class Trunk(nn.Module):
    """Images -> logits through the model's layers only (no input checks), so FX can trace it."""

    def __init__(self, model: Inception3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        x = m.forward_stem(m.input_norm(x))  # N x 192 x 35 x 35
        return m.forward_head(m.forward_postaux(m.forward_preaux(x)))  # N x num_classes


@torch.no_grad()
def quantize_int8(model: Inception3, calibration: Iterable[Tensor]) -> Int8Model:
    """Static int8 post-training quantization for x86 CPUs (fbgemm/oneDNN kernels): conv + BN + ReLU
    fused, activations calibrated on `calibration` batches (a few hundred images are enough)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    trunk = Trunk(fold_batchnorm(model)).eval()
    batches = list(calibration)
    if not batches:
        raise ValueError("int8 quantization needs at least one calibration batch")
    with warnings.catch_warnings():  # PyTorch's notes that its own defaults will be deprecated
        warnings.filterwarnings("ignore", message=".*(reduce_range|quantized tensor creation).*")
        prepared = prepare_fx(trunk, get_default_qconfig_mapping("x86"), example_inputs=(batches[0],))
        for x in batches:
            prepared(x)
        return Int8Model(convert_fx(prepared), model)


class Int8Model(nn.Module):
    """The quantized graph, with the original's config (input size, normalization) for evaluation code."""

    def __init__(self, graph: nn.Module, model: Inception3) -> None:
        super().__init__()
        self.graph, self.config = graph, model.config

    def forward(self, x: Tensor) -> Tensor:
        with warnings.catch_warnings():  # cat of branches with their own scales is requantized (correct, noisy)
            warnings.filterwarnings("ignore", message=".*cat operator must share the same quantization.*")
            return self.graph(x)
