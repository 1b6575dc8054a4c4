"""Accuracy of the fast inference path and the int8 model against the fp32 model, on real
Fashion-MNIST test images, with each one's speed on the same batches."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import Tensor

from inception_v3.data.crops import ViewSpec, single_crop_transform
from inception_v3.data.fashion_mnist import load_fashion_mnist
from inception_v3.inference import fast_inference, quantize_int8
from inception_v3.models.inception import Inception3

from .throughput import sync_device


def fashion_mnist_batches(model: Inception3, data_dir: str, split: str, count: int, central_fraction: float = 1.0,
                          batch: int = 32) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """The first `count` images of `split` as `inception-v3 evaluate` feeds them (single crop), in batches."""
    images, labels = load_fashion_mnist(data_dir, split)
    c = model.config
    crop = single_crop_transform(c.receptive_field, ViewSpec(crop_fraction=central_fraction), c.in_chans, c.mean, c.std)
    x = torch.stack([crop(im[None]) for im in images[:count]])
    return list(zip(x.split(batch), labels[:count].long().split(batch), strict=True))


@torch.no_grad()
def compare(model: Inception3, test: list[tuple[Tensor, Tensor]], calibration: list[Tensor] | None,
            device: torch.device) -> dict[str, Any]:  # fmt: skip
    """top-1 of fp32 / fast (on `device`) / int8 (x86 CPU kernels, so on the CPU; skipped without
    `calibration`), their top-1 agreement with fp32, and images/s on the same batches."""
    model = model.eval()
    nets = {"fp32": (copy.deepcopy(model).to(device), device), "fast": (fast_inference(model, device), device)}
    if calibration is not None:
        nets["int8"] = (quantize_int8(model, calibration), torch.device("cpu"))
    preds: dict[str, Tensor] = {}
    out: dict[str, Any] = {}
    labels = torch.cat([y for _, y in test])
    for name, (net, where) in nets.items():
        net(test[0][0].to(where))  # warm up
        sync_device(where)
        start = time.perf_counter()
        preds[name] = torch.cat([net(x.to(where)).argmax(1).cpu() for x, _ in test])
        sync_device(where)
        elapsed = time.perf_counter() - start
        out[name] = {"top1": float((preds[name] == labels).float().mean()), "images_per_s": len(labels) / elapsed,
                     "device": where.type}  # fmt: skip
    for name in nets:
        out[name]["agreement_with_fp32"] = float((preds[name] == preds["fp32"]).float().mean())
        out[name]["top1_change_points"] = 100 * (out[name]["top1"] - out["fp32"]["top1"])
    out["images"] = len(labels)
    return out
