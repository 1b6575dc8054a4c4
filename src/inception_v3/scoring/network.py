"""The FID tools' network (preset `inception_v3_fid`, pytorch-fid's `pt_inception-2015-12-05` weights by
default, downloaded once) as the scores use it: batch norm folded into the convolutions, channels_last, fp32
(the numbers must not move), and its taps: 64 / 192 / 768 / 2048 (pool3) average-pooled features and the logits
without the fc bias that the Inception Score reads (torch-fidelity's `logits_unbiased`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ..deploy.fusion import fold_batchnorm
from ..errors import UserError
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.inception import FEATURE_TAPS, Inception3, pooled_taps

FID_WEIGHTS = "pytorch-fid/2015-12-05"
LOGITS = "logits_unbiased"  # the IS feature: pool3 x fc weights, without the bias (torch-fidelity's)
DIMS = tuple(FEATURE_TAPS)


def load_fid_network(weights: str | os.PathLike[str] = FID_WEIGHTS) -> tuple[Inception3, LoadReport]:
    """The FID graph with the given weights (eval mode): by default pytorch-fid's file, downloaded once."""
    model, report = load_pretrained(weights, preset="inception_v3_fid")
    if not model.config.last_block_max_pool or model.config.pool_include_pad:
        raise UserError(f"{weights} is not an FID network's weights (load it with preset inception_v3_fid)")
    return model.eval(), report


def feature_network(weights: str | os.PathLike[str], device: torch.device) -> tuple[Inception3, str, LoadReport]:
    """The FID network folded for scoring, on `device`, with a fingerprint of the file it was loaded from."""
    model, report = load_fid_network(weights)
    fingerprint = str(report.weights)
    if report.file and Path(report.file).is_file():
        st = Path(report.file).stat()
        fingerprint += f":{Path(report.file).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    net = fold_batchnorm(model).eval().to(device).to(memory_format=torch.channels_last)
    return net, fingerprint, report


def tap_outputs(net: Inception3, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
    """The taps' features of a batch of network inputs: "64", "192", "768", "2048" or LOGITS -> N x D float32."""
    dims = sorted({int(t) for t in taps if t != LOGITS} | ({2048} if LOGITS in taps else set()))
    pooled = pooled_taps(net, x.contiguous(memory_format=torch.channels_last), dims)
    return {t: (pooled[2048].mm(net.fc.weight.T) if t == LOGITS else pooled[int(t)]).float() for t in taps}


@contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """Full fp32 for the features whatever the caller set: no autocast, no TF32 convolutions (PyTorch's default on
    GPUs); either would move the scores."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
