"""The fast inference path (BN folded, channels_last, bf16) against fp32; the int8 model's input checks."""

from pathlib import Path

import pytest
import torch

from inception_v3 import create_model
from inception_v3.errors import UserError
from inception_v3.inference import bf16_supported, fast_inference, quantize_int8


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """A small 79x79 model whose batch-norm statistics come from data, so eval outputs are sane."""
    torch.manual_seed(0)
    net = create_model("inception_v3_79", num_classes=10, width_multiplier=0.125, min_depth=8)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 79, 79))
    return net.eval()


def test_fast_path_in_fp32_is_the_same_function(model: torch.nn.Module) -> None:
    x = torch.randn(4, 3, 79, 79)
    fast = fast_inference(model, bf16=False)
    out = fast(x)
    assert out.dtype == torch.float32 and out.shape == (4, 10)
    assert torch.allclose(out, model(x), atol=1e-4, rtol=1e-4)
    assert fast.model.Conv2d_4a_3x3.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


def test_fast_path_in_bf16_keeps_the_predictions(model: torch.nn.Module) -> None:
    x = torch.randn(64, 3, 79, 79)
    fast = fast_inference(model, bf16=True)
    assert next(fast.parameters()).dtype == torch.bfloat16
    ref, out = model(x), fast(x)
    assert out.dtype == torch.float32
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9


def test_bf16_is_used_where_the_cpu_has_it(model: torch.nn.Module) -> None:
    flags = set(Path("/proc/cpuinfo").read_text().split())  # the kernel's view, independent of PyTorch's
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert bf16_supported(torch.device("cpu")) is native
    dtype = next(fast_inference(model).parameters()).dtype  # the default follows the hardware
    assert dtype == (torch.bfloat16 if native else torch.float32)


def test_fast_path_refuses_bad_input_like_the_model(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="input channel"):
        fast_inference(model, bf16=False)(torch.randn(1, 1, 79, 79))


def test_int8_needs_calibration_batches(model: torch.nn.Module) -> None:
    """(The int8 model against fp32 is checked in tests/test_evaluate.py, on the model `evaluate --mode int8`
    builds from the trained run, on real test images: one compile of ~20 s instead of two.)"""
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(model, [])


def test_bf16_on_a_gpu_only_where_it_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda.is_bf16_supported() is true on pre-Ampere GPUs too, which emulate bf16 slowly: the
    choice follows the compute capability (8.0 and up) instead."""
    for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        assert bf16_supported(torch.device("cuda")) is native


def test_fast_path_moves_its_input_to_the_network(model: torch.nn.Module) -> None:
    """A CPU batch into a fast path on another device (the meta device stands in for a GPU: shapes only)."""
    fast = fast_inference(model, "meta", bf16=False)
    out = fast(torch.randn(2, 3, 79, 79))
    assert out.device.type == "meta" and out.shape == (2, 10) and out.dtype == torch.float32


def test_int8_refuses_a_model_that_is_not_on_the_cpu(model: torch.nn.Module) -> None:
    import copy

    with pytest.raises(UserError, match="x86 CPUs only"):
        quantize_int8(copy.deepcopy(model).to("meta"), [torch.randn(2, 3, 79, 79)])
