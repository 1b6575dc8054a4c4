"""An int8 model for x86 CPUs: static post-training quantization with torchao's pt2e flow (the successor
of PyTorch's deprecated FX quantization), lowered to oneDNN int8 kernels by torch.compile.

The model is exported (`torch.export`), quantized with the X86 Inductor quantizer (conv + BN + ReLU
fused; activations calibrated on a few hundred real images), then compiled once with Inductor's
freezing. Inputs are run in fixed-size chunks (the last one padded), so the compiled graph never
recompiles. Measured on 2 cores at 299x299, batch 32: 129 images/s against 15 for the FX path it
replaces, with outputs closer to fp32 (see docs/performance.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..models.inception import Inception3, check_input
from .fusion import fold_batchnorm

CHUNK = 32  # images per compiled call


class Trunk(nn.Module):
    """Images -> logits through the model's stages only (its input checks stay in Int8Model)."""

    def __init__(self, model: Inception3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        x = m.forward_stem(m.input_norm(x))  # N x 192 x 35 x 35
        return m.forward_head(m.forward_postaux(m.forward_preaux(x)))  # N x num_classes


@torch.no_grad()
def quantize_int8(model: Inception3, calibration: Iterable[Tensor]) -> Int8Model:
    """Static int8 quantization of an eval copy of `model`, calibrated on `calibration` batches (model
    inputs, normalized as for the model); needs torchao (`pip install 'inception-v3[int8]'`) and a C++
    compiler for torch.compile."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        raise UserError("the int8 model needs torchao: pip install 'inception-v3[int8]'") from None
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise UserError(
            "the int8 model runs on x86 CPUs only: quantize a CPU copy (model.cpu()); on a GPU use `mode='fast'`"
        )
    batches = list(calibration)
    if not batches:
        raise ValueError("int8 quantization needs at least one calibration batch")
    trunk = Trunk(fold_batchnorm(model)).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(trunk, (batches[0],), dynamic_shapes={"x": {0: batch}}).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    with warnings.catch_warnings():  # torchao's notes about its own experimental status
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(exported, quantizer)
        for x in batches:
            prepared(x)
        converted = convert_pt2e(prepared)
    return Int8Model(converted, model, batches[0])


class Int8Model(nn.Module):
    """The compiled int8 graph, with the original's config (input size, normalization) and input checks."""

    def __init__(self, graph: nn.Module, model: Inception3, example: Tensor) -> None:
        super().__init__()
        self.config, self.min_size = model.config, model.min_size
        with torch._inductor.config.patch(freezing=True), torch.no_grad():  # freezing lowers to int8 kernels
            self.graph = torch.compile(graph)
            self.graph(_pad(example[:CHUNK]))  # compile now, for the one shape it will see

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.config.in_chans, self.min_size, self.config.receptive_field)
        return torch.cat([self.graph(_pad(chunk))[: len(chunk)] for chunk in x.split(CHUNK)])


def _pad(x: Tensor) -> Tensor:
    """A batch of exactly CHUNK images (zeros appended)."""
    return F.pad(x, (0, 0, 0, 0, 0, 0, 0, CHUNK - len(x))) if len(x) < CHUNK else x
