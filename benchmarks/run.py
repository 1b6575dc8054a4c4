"""Run the benchmark and write its JSON: `python -m benchmarks.run --profile cpu|full|smoke`.

Profiles:
- full: every setting (fp32/bf16 x NCHW/channels_last x eager/compile; inference at batch 1, 8, 32,
  training at 32).
- gpu: `benchmarks/gpu.sh` on one GPU in at most 4 minutes: every eager setting; torch.compile for bf16
  channels_last inference at batch 32 (three compiles of the forward pass; compiling training steps too would
  not fit).
- cpu: what a 2-core CPU can do in ~25 minutes: every eager setting; torch.compile only for inference
  at batch 32 in bf16 channels_last, since each compile of the full model takes minutes here.
- smoke: one tiny pass through every code path (for the test suite); its numbers mean nothing. It trains in
  fp32: a bf16 training step at 299x299 takes 11.6x an fp32 one on a CPU without native bf16 (Zen 3 EPYC).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

import torch

from inception_v3 import create_model
from inception_v3.data.fashion_mnist import FASHION_MNIST_DIR
from inception_v3.models.accounting import count_macs
from inception_v3.utils.io import atomic_write
from inception_v3.weights import load_pretrained

from .accuracy import compare, fashion_mnist_batches
from .data_pipeline import make_jpegs, measure_pipelines
from .memory import measure_memory
from .peak import matmul_peak
from .throughput import Setting, measure

PROFILES: dict[str, dict[str, Any]] = {
    "full": {"batches": (1, 8, 32), "modes": ("eager", "compile"), "train_modes": ("eager", "compile"),
             "compile_only": None, "warmup": 3, "iters": 10, "rounds": 3, "jpegs": 200, "accuracy_images": 10000},
    "gpu": {"batches": (1, 8, 32), "modes": ("eager", "compile"), "train_modes": ("eager",),
            "compile_only": {("bf16", "channels_last", 32)}, "warmup": 3, "iters": 10, "rounds": 3, "jpegs": 100,
            "accuracy_images": 10000, "int8": False},
    "cpu": {"batches": (1, 8, 32), "modes": ("eager", "compile"), "train_modes": ("eager",),
            "compile_only": {("bf16", "channels_last", 32)}, "warmup": 1, "iters": 2,
            "rounds": 2, "jpegs": 100, "accuracy_images": 2000},
    "smoke": {"batches": (1,), "modes": ("eager",), "train_modes": ("eager",), "compile_only": None,
              "warmup": 1, "iters": 1, "rounds": 1, "jpegs": 4, "accuracy_images": 64, "train_batch": 2,
              "dtypes": (("bf16", "channels_last"),), "inference_size": 75, "peak_sizes": (256,), "int8": False,
              "train_dtypes": (("fp32", "channels_last"),), "memory_tasks": ("training",), "memory_models": ("ours",)},
}  # fmt: skip


def settings(profile: dict[str, Any]) -> list[Setting]:
    pairs = profile.get("dtypes") or tuple(product(("fp32", "bf16"), ("nchw", "channels_last")))
    out = []
    for mode, (dtype, layout), batch in product(profile["modes"], pairs, profile["batches"]):
        only = profile["compile_only"]
        if mode == "compile" and only is not None and (dtype, layout, batch) not in only:
            continue
        out.append(Setting("inference", dtype, layout, mode, batch))
    batch = profile.get("train_batch", 32)
    for mode, (dtype, layout) in product(profile["train_modes"], profile.get("train_dtypes", pairs)):
        only = profile["compile_only"]
        if mode == "compile" and only is not None and (dtype, layout, batch) not in only:
            continue
        out.append(Setting("training", dtype, layout, mode, batch))
    return sorted(out, key=lambda s: s.mode != "eager")  # compiles last: a run cut short keeps the eager rows


def machine(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "processor": _cpu_name(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def model_flops(size: int = 299) -> dict[str, float]:
    """FLOPs (2 x multiply-adds) per image: inference (main path) and a training step (3 x forward incl. aux)."""
    model = create_model("inception_v3").eval()  # eval: the aux head runs too, on a batch of one
    x = torch.zeros(1, 3, size, size)
    main = count_macs(model, lambda: model(x))
    total = count_macs(model, lambda: model.forward_with_aux(x))
    return {"inference": 2.0 * main, "training": 6.0 * total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="JSON to write (default: benchmarks/results/<profile>-<device>.json)")
    parser.add_argument("--checkpoint", help="a Fashion-MNIST checkpoint for the fast-path / int8 accuracy check")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--central-fraction", type=float, default=1.0, help="eval crop of the checkpoint's recipe")
    parser.add_argument("--only", choices=("models", "memory", "data", "accuracy"), action="append",
                        help="run only these parts (repeatable), merged into an existing --out")  # fmt: skip
    args = parser.parse_args(argv)
    profile, device = PROFILES[args.profile], torch.device(args.device)
    out = Path(args.out or f"benchmarks/results/{args.profile}-{device.type}.json")
    parts = set(args.only or ("models", "memory", "data", "accuracy"))
    if args.checkpoint and not Path(args.checkpoint).exists():
        print(f"benchmark: error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    started = time.time()
    command = "python -m benchmarks.run " + " ".join(argv or sys.argv[1:])
    earlier = json.loads(out.read_text()) if args.only and out.exists() else {}
    result: dict[str, Any] = {
        "profile": args.profile,
        "device": device.type,
        "machine": machine(device),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
    }
    if earlier:  # a part measured again: keep the first run's header and note this command
        result = {**result, **earlier, "more_commands": [*earlier.get("more_commands", []), command]}

    def save() -> None:  # after every measured row too, so a run cut short by a time limit keeps what it measured
        result["seconds"] = time.time() - started + earlier.get("seconds", 0.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, lambda p: Path(p).write_text(json.dumps(result, indent=1)))

    if "models" in parts:
        sizes = profile.get("peak_sizes", (1024, 2048, 4096))
        result["peak_flops"] = {name: matmul_peak(device, dtype, sizes)
                                for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}  # fmt: skip
        result["model_flops_per_image"] = model_flops()
        calibration = torch.randn(16, 3, 299, 299) if profile.get("int8", True) else None
        rows = []
        for s in settings(profile):
            size = profile.get("inference_size", 299) if s.task == "inference" else 299
            row = measure(s, device, profile["warmup"], profile["iters"], profile["rounds"], size, calibration)
            flops = result["model_flops_per_image"][s.task]
            peak = result["peak_flops"][s.dtype]["flops"]
            for entry in row["models"].values():
                entry["flop_utilization"] = entry["images_per_s"] * flops / peak
            rows.append(row)
            result["throughput"] = rows
            save()
    if "memory" in parts and device.type == "cpu":
        batch = max(profile["batches"])
        chosen = [s for s in settings(profile) if s.mode == "eager" and (s.batch == batch or s.task == "training")
                  and s.task in profile.get("memory_tasks", ("inference", "training"))]  # fmt: skip
        result["memory"] = measure_memory(chosen, profile.get("int8", True), only=profile.get("memory_models"))
    if "data" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            result["data_pipeline"] = measure_pipelines(make_jpegs(Path(tmp), profile["jpegs"]))
    if "accuracy" in parts:
        if args.checkpoint:
            model, _ = load_pretrained(args.checkpoint)
            n = profile["accuracy_images"]
            test = fashion_mnist_batches(model, args.data_dir, "test", n, args.central_fraction)
            calib = None  # int8 runs on x86 CPUs only
            if device.type == "cpu":
                calib = [x for x, _ in fashion_mnist_batches(model, args.data_dir, "train", 256, args.central_fraction)]
            result["accuracy"] = {"checkpoint": args.checkpoint, **compare(model, test, calib, device)}
            print("accuracy  " + "  ".join(f"{k} {v['top1']:.4f} (agrees {v['agreement_with_fp32']:.4f}, "
                                           f"{v['images_per_s']:.0f}/s)" for k, v in result["accuracy"].items()
                                           if isinstance(v, dict)))  # fmt: skip
        else:
            result["accuracy"] = {"skipped": "no --checkpoint given"}
    save()
    print(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
