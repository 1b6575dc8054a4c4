"""Export for serving: batch norm folded into the convolutions, a dynamic batch, one output tensor
(logits, or the pooled 2048-d features), written atomically; ONNX checked against PyTorch."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError, reason
from ..models.inception import Inception3
from ..utils.io import StrPath, atomic_write
from .fusion import fold_batchnorm

FORMATS = ("torchscript", "onnx", "exported-program")
# ONNX Runtime vs PyTorch in fp32: the largest difference relative to the largest output. A full-size
# Inception-v3 with logits around 3 differs by ~1e-4 absolute (~4e-5 relative); a wrong graph by far more.
RELATIVE_TOLERANCE = 1e-3


def compare_outputs(want: Tensor, got: Tensor, logits: bool = True) -> dict[str, float]:
    """How far `got` is from `want`; raises UserError unless it is within the relative tolerance and, for
    logits, predicts the same class wherever PyTorch's top-2 margin is larger than that tolerance."""
    scale = max(float(want.abs().max()), 1e-12)
    diff = float((got - want).abs().max())
    result = {"max_abs_diff": diff, "relative_diff": diff / scale}
    if got.shape != want.shape or not torch.isfinite(got).all() or result["relative_diff"] > RELATIVE_TOLERANCE:
        raise UserError(
            f"the exported model's output differs from PyTorch's by {diff:.2e} "
            f"({result['relative_diff']:.1e} of the output scale {scale:.2g}; allowed "
            f"{RELATIVE_TOLERANCE:.0e}); nothing was written"
        )
    if logits and want.shape[1] > 1:
        top2 = want.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > RELATIVE_TOLERANCE * scale
        agree = got.argmax(1) == want.argmax(1)
        result["top1_agreement"] = float(agree.float().mean())
        if not bool(agree[clear].all()):
            raise UserError(
                "the exported model predicts other classes than PyTorch on the check batch; nothing was written"
            )
    return result


class PooledFeatures(nn.Module):
    """Serve the N x 2048 pooled features instead of logits."""

    def __init__(self, model: Inception3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def export_model(
    model: Inception3, fmt: str, output: StrPath, features: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Write `model` in `fmt` to `output` (atomically; an existing file only with `overwrite`); returns what was
    written and, for ONNX, the check."""
    if Path(output).exists() and not overwrite:
        raise UserError(f"{output} exists; choose another path or pass `overwrite=True`")
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; valid values: {', '.join(FORMATS)}")
    net: nn.Module = fold_batchnorm(model)
    if features:
        net = PooledFeatures(net).eval()  # type: ignore[arg-type]
    size, chans = model.config.receptive_field, model.config.in_chans
    name = "features" if features else "logits"
    example = torch.randn(2, chans, size, size)
    info: dict[str, Any] = {"format": fmt, "output": str(output), "input": [-1, chans, size, size], "output_name": name}
    if fmt == "torchscript":
        scripted = torch.jit.script(net)
        _write(output, lambda tmp: torch.jit.save(scripted, tmp))
    elif fmt == "exported-program":
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}})
        _write(output, lambda tmp: torch.export.save(program, tmp))
    else:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("ONNX export needs onnx and onnxruntime: pip install 'inception-v3[export]'") from None

        def write(tmp: str) -> None:
            with warnings.catch_warnings():  # the shape checks are constants for a fixed-size export
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                axes = {"images": {0: "batch"}, name: {0: "batch"}}
                torch.onnx.export(
                    net, (example,), tmp, input_names=["images"], output_names=[name], dynamic_axes=axes, dynamo=False
                )
            check = torch.randn(3, chans, size, size)  # another batch size than the example
            session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"images": check.numpy()})[0])
            with torch.no_grad():
                want = net(check)
            diff = compare_outputs(want, got, logits=not features)
            info.update(onnx_max_abs_diff=diff["max_abs_diff"], onnx_relative_diff=diff["relative_diff"])

        _write(output, write)
    info["bytes"] = Path(output).stat().st_size
    return info


def _write(output: StrPath, write: Callable[[str], Any]) -> None:
    """Write atomically; a failed write (a full disk: torch's writers report it as a RuntimeError) is one line."""
    try:
        atomic_write(output, write)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"cannot write {output}: {reason(exc)}; nothing was written") from None
