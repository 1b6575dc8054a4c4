"""Training-loop throughput of this checkout against another git revision, in one run:
`python -m benchmarks.training_loop --baseline REV`.

The baseline is checked out in a temporary git worktree. Each round runs the real `inception-v3 train`
of both versions in turn (fresh processes, the same settings), for two workloads: the fashion-mnist
recipe (width 1/8 at 79x79, bf16, channels_last) and the full 299x299 Inception-v3. The rate is
taken from the run's own metrics log between the first and the last logged step, so start-up,
validation and the report are left out; the result is the median over rounds and the ratio
this checkout / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from inception_v3.utils.io import atomic_write_text

from .run import _cpu_name

ROOT = Path(__file__).resolve().parents[1]
# name -> (train options, images per step, logged steps measured: from, to)
WORKLOADS: dict[str, tuple[list[str], int, tuple[int, int]]] = {
    "fashion-mnist recipe (79x79, width 1/8, bf16, channels_last, batch 32)": (
        ["--recipe", "fashion-mnist", "--train-subset", str(32 * 70), "--epochs", "1"], 32, (10, 70)),
    "Inception-v3 299x299 (full width, bf16, channels_last, batch 8)": (
        ["--recipe", "fashion-mnist", "--preset", "inception_v3", "--receptive-field", "299", "--width-multiplier",
         "1.0", "--min-depth", "16", "--batch-size", "8", "--train-subset", str(8 * 40), "--epochs", "1"], 8, (10, 40)),
}  # fmt: skip
COMMON = ["--workers", "0", "--val-subset", "32", "--checkpoint-every", "0"]


def steps_per_second(src: Path, args: list[str], out: Path, span: tuple[int, int], batch: int) -> float:
    """Run one training with the package in `src`; steps/s between two logged steps of its metrics.jsonl."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "inception_v3.cli", "train", *args, *COMMON, "--out-dir", str(out), "--name", "run"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    steps = {r["step"]: r for r in map(json.loads, (out / "run" / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "step"}  # fmt: skip
    first, last = steps[span[0]], steps[span[1]]
    elapsed = span[1] * batch / last["img_s"] - span[0] * batch / first["img_s"]  # img_s = images / time in epoch
    return (span[1] - span[0]) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_loop")
    parser.add_argument("--baseline", required=True, help="git revision to compare with (e.g. the commit before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/training-loop-cpu.json")
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        revision = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()  # fmt: skip
        try:
            versions = {f"baseline {revision}": worktree / "src", "this checkout": ROOT / "src"}
            rates: dict[str, dict[str, list[float]]] = {w: {v: [] for v in versions} for w in WORKLOADS}
            runs = 0
            for r in range(args.rounds):
                for workload, (options, batch, span) in WORKLOADS.items():
                    for version, src in versions.items():
                        runs += 1
                        out = Path(tmp) / f"run-{runs}"
                        out.mkdir()
                        rate = steps_per_second(src, options, out, span, batch)
                        rates[workload][version].append(rate)
                        print(f"round {r + 1}: {workload} | {version}: {rate * batch:.1f} img/s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    rows = []
    for workload, by_version in rates.items():
        batch = WORKLOADS[workload][1]
        medians = {v: statistics.median(x) * batch for v, x in by_version.items()}
        base, ours = medians[f"baseline {revision}"], medians["this checkout"]
        rows.append({"workload": workload, "images_per_s": medians, "rounds": by_version, "ratio": ours / base})
    result: dict[str, Any] = {
        "profile": "training-loop", "device": "cpu", "date": time.strftime("%Y-%m-%d"),
        "command": f"python -m benchmarks.training_loop --baseline {args.baseline} --rounds {args.rounds}",
        "seconds": time.time() - started, "baseline": revision, "training_loop": rows,
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpus": os.cpu_count(),
                    "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "torch": torch.__version__},
    }  # fmt: skip
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
