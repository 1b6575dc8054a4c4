"""The machine's measured matmul peak (the best of a few square sizes), in FLOP/s, per dtype."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 4096),
                seconds: float = 1.0) -> dict[str, float]:  # fmt: skip
    """The best FLOP/s of `a @ b` over `sizes`, each run for about `seconds`."""
    best = {"flops": 0.0, "size": 0}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        reps = 1
        while True:  # grow the repetitions until one timing lasts long enough
            elapsed = _time(lambda a=a, b=b, r=reps: [a @ b for _ in range(r)], device)
            if elapsed >= seconds:
                break
            reps *= 2
        rate = 2 * n**3 * reps / elapsed
        if rate > best["flops"]:
            best = {"flops": rate, "size": n}
    return best


def _time(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
