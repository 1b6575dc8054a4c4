"""How much margin the suite's learning test has: `python -m benchmarks.learning_margin`.

Runs the settings of `tests/test_train.py::test_short_real_run_learns` (width 1/16 at 79x79, 960
Fashion-MNIST training images, 4 epochs, lr 0.1) over seeds and with and without bf16, and records
the best top-1 (averaged or raw weights) and the raw weights' validation loss of each run, next to
the test's thresholds (top-1 > 0.4, loss < 1.8).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time

import torch

from inception_v3.training.loop import train
from inception_v3.training.recipes import get_recipe
from inception_v3.utils.io import atomic_write_text

from .run import _cpu_name

TEST_SETTINGS = {
    "width_multiplier": 0.0625,
    "min_depth": 4,
    "batch_size": 32,
    "workers": 0,
    "train_subset": 960,
    "val_subset": 200,
    "epochs": 4.0,
    "lr": 0.1,
    "lr_decay_epochs": 1.0,
    "channels_last": False,
}
THRESHOLDS = {"best_top1": 0.4, "raw_loss": 1.8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning_margin")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/learning-margin-cpu.json")
    args = parser.parse_args(argv)
    started, runs = time.time(), []
    with tempfile.TemporaryDirectory() as tmp:
        for amp in ("none", "bf16"):
            for seed in range(args.seeds):
                cfg = get_recipe(
                    "fashion-mnist", **TEST_SETTINGS, amp=amp, seed=seed, out_dir=tmp, name=f"{amp}-{seed}"
                )
                with contextlib.redirect_stdout(io.StringIO()):
                    final = train(cfg).final
                run = {
                    "amp": amp,
                    "seed": seed,
                    "best_top1": max(final["ema"]["top1"], final["raw"]["top1"]),
                    "ema_top1": final["ema"]["top1"],
                    "raw_top1": final["raw"]["top1"],
                    "raw_loss": final["raw"]["loss"],
                }
                runs.append(run)
                print(json.dumps(run), flush=True)
    worst = {"best_top1": min(r["best_top1"] for r in runs), "raw_loss": max(r["raw_loss"] for r in runs)}
    result = {
        "profile": "learning-margin",
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.time() - started,
        "command": f"python -m benchmarks.learning_margin --seeds {args.seeds}",
        "settings": TEST_SETTINGS,
        "thresholds": THRESHOLDS,
        "worst": worst,
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "processor": _cpu_name(),
            "cpus": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__,
        },
    }
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(
        f"worst best-top-1 {worst['best_top1']:.3f} (test needs > {THRESHOLDS['best_top1']}), worst raw loss "
        f"{worst['raw_loss']:.2f} (test needs < {THRESHOLDS['raw_loss']}); wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
