"""Model throughput and peak memory: this project's Inception-v3, torchvision's and timm's, measured
interleaved (every round times each model once, in turn) so that machine drift hits all alike."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inception_v3 import create_model
from inception_v3.inference import fast_inference, quantize_int8

LIBRARIES = ("torchvision", "timm", "ours")


def build(library: str, aux: bool = True) -> nn.Module:
    """Inception-v3 with or without the auxiliary head (timm runs its head whenever it has one;
    torchvision and ours only in training), 1000 classes."""
    if library == "torchvision":
        from torchvision.models import inception_v3

        return inception_v3(weights=None, aux_logits=aux, init_weights=False)
    if library == "timm":
        import timm

        return timm.create_model("inception_v3", pretrained=False, aux_logits=aux)
    if library == "ours":
        return create_model("inception_v3" if aux else "inception_v3_no_aux")
    raise ValueError(f"unknown library {library!r}")


def logits_and_aux(library: str, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Training-mode forward pass: main and auxiliary logits, whatever the library returns."""
    if library == "ours":
        out = model.forward_with_aux(x)  # type: ignore[operator]
        return out.logits, out.aux_logits
    out = model(x)
    return out[0], out[1]


@dataclass
class Setting:
    """One row of the benchmark: what runs, in which precision, layout and mode, at which batch."""

    task: str  # "inference" or "training"
    dtype: str  # "fp32" or "bf16" (autocast; the fast path keeps bf16 weights instead)
    layout: str  # "nchw" or "channels_last"
    mode: str  # "eager" or "compile"
    batch: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.dtype}/{self.layout}/{self.mode}/bs{self.batch}"


class PeakMemory:
    """Peak CUDA memory allocated above the starting point while the block runs (CPU memory is
    measured per model in a fresh process instead: see `benchmarks/memory.py`)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.base, self.peak = device, 0, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()

    @property
    def mib(self) -> float | None:
        return (self.peak - self.base) / 2**20 if self.device.type == "cuda" else None


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(library: str, model: nn.Module, s: Setting, device: torch.device) -> Callable[[Tensor, Tensor], Any]:
    """One inference batch or one training step (SGD, loss on main + 0.4 x aux) as a closure."""
    if s.task == "inference":
        model.eval()
        fn = torch.compile(model) if s.mode == "compile" else model

        @torch.no_grad()
        def infer(x: Tensor, _y: Tensor) -> Tensor:
            with _autocast(device, s.dtype):
                return fn(x)

        return infer
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    forward = torch.compile(lambda x: logits_and_aux(library, model, x)) if s.mode == "compile" else (
        lambda x: logits_and_aux(library, model, x))  # fmt: skip

    def train_step(x: Tensor, y: Tensor) -> Tensor:
        with _autocast(device, s.dtype):
            logits, aux = forward(x)
            loss = F.cross_entropy(logits.float(), y) + 0.4 * F.cross_entropy(aux.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return train_step


@dataclass
class Candidate:
    """A model prepared for one setting: its step function and its input format."""

    name: str
    step: Callable[[Tensor, Tensor], Any]
    channels_last: bool


def candidate_names(s: Setting, device: torch.device, int8: bool) -> list[str]:
    """The three libraries at this setting, plus (inference, bf16 channels_last) our fast path and,
    on CPUs in eager mode, our int8 model."""
    names = list(LIBRARIES)
    if s.task == "inference" and s.dtype == "bf16" and s.layout == "channels_last":
        names.append("ours-fast")
        if device.type == "cpu" and s.mode == "eager" and int8:
            names.append("ours-int8")
    return names


def candidate(name: str, s: Setting, device: torch.device, calibration: Tensor | None = None) -> Candidate:
    """One model prepared for the setting (int8 needs calibration inputs)."""
    if name in LIBRARIES:
        model = build(name, aux=s.task == "training").to(device)
        cl = s.layout == "channels_last"
        if cl:
            model = model.to(memory_format=torch.channels_last)
        return Candidate(name, make_step(name, model, s, device), cl)
    if name == "ours-fast":
        fast = fast_inference(build("ours", aux=False).eval(), device, bf16=True)
        fn = torch.compile(fast) if s.mode == "compile" else fast
        return Candidate(name, torch.no_grad()(lambda x, _y: fn(x)), False)
    if name == "ours-int8" and calibration is not None:
        q = quantize_int8(build("ours", aux=False).eval(), calibration.split(8))
        return Candidate(name, torch.no_grad()(lambda x, _y: q(x)), False)
    raise ValueError(f"unknown candidate {name!r} (int8 needs calibration inputs)")


def measure(s: Setting, device: torch.device, warmup: int, iters: int, rounds: int, size: int = 299,
            calibration: Tensor | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """images/s (median over rounds) and peak memory of every candidate at one setting, interleaved."""
    torch.manual_seed(0)
    x = torch.randn(s.batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (s.batch,), device=device)
    cands = [candidate(n, s, device, calibration) for n in candidate_names(s, device, calibration is not None)]
    rates: dict[str, list[float]] = {c.name: [] for c in cands}
    memory: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    for c in cands:  # warm up (and compile) each one before any timing
        xc = x.contiguous(memory_format=torch.channels_last) if c.channels_last else x
        start = time.perf_counter()
        for _ in range(warmup):
            c.step(xc, y)
        sync_device(device)
        compile_s[c.name] = time.perf_counter() - start
    for _ in range(rounds):
        for c in cands:
            xc = x.contiguous(memory_format=torch.channels_last) if c.channels_last else x
            with PeakMemory(device) as mem:
                start = time.perf_counter()
                for _ in range(iters):
                    c.step(xc, y)
                sync_device(device)
                elapsed = time.perf_counter() - start
            rates[c.name].append(s.batch * iters / elapsed)
            if mem.mib is not None:
                memory[c.name] = max(memory.get(c.name, 0.0), mem.mib)
    result = {"setting": s.__dict__ | {"key": s.key}, "models": {}}
    for name, r in rates.items():
        result["models"][name] = {"images_per_s": statistics.median(r), "rounds": r, "peak_mib": memory.get(name),
                                  "warmup_s": compile_s[name]}  # fmt: skip
    base = result["models"]["torchvision"]["images_per_s"]
    for entry in result["models"].values():
        entry["vs_torchvision"] = entry["images_per_s"] / base
    log(s.key + "  " + "  ".join(f"{n} {e['images_per_s']:.1f}/s ({e['vs_torchvision']:.2f}x)"
                                 for n, e in result["models"].items()))  # fmt: skip
    return result
