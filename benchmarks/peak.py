"""The machine's measured matmul peak (the best of a few square sizes), in FLOP/s, per dtype."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 4096),
                seconds: float = 1.0) -> dict[str, float | bool]:  # fmt: skip
    """The best FLOP/s of `a @ b` over `sizes`, each run for about `seconds`. Every product is written
    into one output buffer, so memory stays at three matrices however many repetitions a timing takes.
    On a GPU, fp32 products use TF32 exactly when cuDNN's convolutions do (PyTorch's default: they do,
    matmuls do not), so the peak is the one the model's fp32 convolutions can reach; `tf32` says which."""
    tf32 = device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        return {**_best(device, dtype, sizes, seconds), "tf32": tf32}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _best(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...], seconds: float) -> dict[str, float]:
    best = {"flops": 0.0, "size": 0}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty_like(a)
        reps = 1
        while True:  # grow the repetitions until one timing lasts long enough
            elapsed = _time(lambda a=a, b=b, out=out, r=reps: _matmuls(a, b, out, r), device)
            if elapsed >= seconds:
                break
            reps *= 2
        rate = 2 * n**3 * reps / elapsed
        if rate > best["flops"]:
            best = {"flops": rate, "size": n}
    return best


def _matmuls(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, reps: int) -> None:
    for _ in range(reps):
        torch.matmul(a, b, out=out)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
