"""Fast inference: batch norm folded into the convolutions, channels_last, bf16 weights where the
hardware computes in bf16; and an int8 post-training-quantized CPU model (PyTorch's FX quantization)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .export import fold_batchnorm
from .model import Inception3

MODES = ("fp32", "fast", "int8")


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bf16 convolutions natively (AVX512-BF16/AMX on CPUs, Ampere+ on GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Trunk(nn.Module):
    """Images -> logits through the model's layers only (no input checks), so FX can trace it."""

    def __init__(self, model: Inception3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        return m.forward_head(m._to_8x8(m._to_17x17(m.input_norm(x))))


class FastInference(nn.Module):
    """An eval-only model that takes and returns fp32 NCHW tensors like the original."""

    def __init__(self, model: Inception3, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.model, self.dtype, self.channels_last = model, dtype, channels_last
        self.config = model.config

    def forward(self, x: Tensor) -> Tensor:
        self.model.check_input(x, self.model.min_size)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return self.model(x.to(self.dtype).contiguous(memory_format=fmt)).float()  # N x num_classes


def fast_inference(model: Inception3, device: torch.device | str = "cpu", bf16: bool | None = None,
                   channels_last: bool = True) -> FastInference:  # fmt: skip
    """BN-folded, channels_last copy of `model` on `device`, in bf16 when the device supports it
    (or when `bf16` says so). Inputs and outputs stay fp32."""
    device = torch.device(device)
    use_bf16 = bf16_supported(device) if bf16 is None else bf16
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    net = fold_batchnorm(model).to(device=device, dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return FastInference(net, dtype, channels_last).eval()


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
