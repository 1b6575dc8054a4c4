"""Fast inference: batch norm folded into the convolutions, channels_last, bf16 weights where the
hardware computes in bf16; fp32 in and out, the same input checks as the model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.inception import Inception3
from ..utils.devices import model_device
from ..utils.precision import bf16_supported
from .fusion import fold_batchnorm


class FastInference(nn.Module):
    """An eval-only model that takes fp32 NCHW tensors like the original, on any device (moved to the
    network's), and returns fp32 logits on the network's device."""

    def __init__(self, model: Inception3, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.model, self.dtype, self.channels_last, self.config = model, dtype, channels_last, model.config

    def forward(self, x: Tensor) -> Tensor:
        self.model.check_input(x, self.model.min_size)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(model_device(self.model), self.dtype, non_blocking=True).contiguous(memory_format=fmt)
        return self.model(x).float()  # N x num_classes


def fast_inference(
    model: Inception3, device: torch.device | str = "cpu", bf16: bool | None = None, channels_last: bool = True
) -> FastInference:
    """BN-folded, channels_last copy of `model` on `device`, in bf16 when the device supports it
    (or when `bf16` says so). Inputs and outputs stay fp32."""
    device = torch.device(device)
    use_bf16 = bf16_supported(device) if bf16 is None else bf16
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    net = fold_batchnorm(model).to(device=device, dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return FastInference(net, dtype, channels_last).eval()
