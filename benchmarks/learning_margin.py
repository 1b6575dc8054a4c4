"""How much margin the suite's learning and fine-tuning tests have: `python -m benchmarks.learning_margin`.

Runs the suite's one training run (`trained_run` in tests/conftest.py: width 1/16 at 79x79, 960
Fashion-MNIST training images of classes 0-4, 4 epochs, lr 0.1) over seeds and with and without bf16,
and records the best top-1 (averaged or raw weights) and the raw weights' validation loss of each run,
next to the learning test's thresholds. From each fp32 run it then repeats
`tests/test_finetune.py::test_finetuning_beats_scratch_with_the_same_budget` at the same seed: classes
5-9 fine-tuned from that run, and from scratch with the finetune recipe and with RMSProp at lr 0.1.
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
from typing import Any

import torch

from inception_v3.training.loop import train
from inception_v3.training.recipes import get_recipe
from inception_v3.utils.io import atomic_write_text

from .run import _cpu_name

TEST_SETTINGS = {  # tests/conftest.py trains its `trained_run` with these
    "width_multiplier": 0.0625,
    "min_depth": 4,
    "batch_size": 32,
    "workers": 0,
    "train_subset": 960,
    "val_subset": 200,
    "epochs": 4.0,
    "lr": 0.1,
    "lr_decay_epochs": 1.0,
    "precise_bn_images": 256,
    "classes": "0,1,2,3,4",
}
# the fine-tuning test's new task (its NEW_TASK options)
FINETUNE_SETTINGS = {
    "dataset": "fashion-mnist",
    "crop_area_min": 0.85,
    "color_distortion": 0.0,
    "eval_crop": 1.0,
    "classes": "5,6,7,8,9",
    "train_subset": 320,
    "epochs": 2.0,
    "val_subset": 250,
    "workers": 0,
    "amp": "none",
    "precise_bn_images": 128,
}
SCRATCH = {"preset": "inception_v3_79", "width_multiplier": 0.0625, "min_depth": 4}
THRESHOLDS = {"best_top1": 0.5, "raw_loss": 1.2, "finetune_gain": 0.05}


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
                    trained = train(cfg)
                final = trained.final
                run: dict[str, Any] = {
                    "amp": amp,
                    "seed": seed,
                    "best_top1": best_top1(final),
                    "ema_top1": final["ema"]["top1"],
                    "raw_top1": final["raw"]["top1"],
                    "raw_loss": final["raw"]["loss"],
                }
                if amp == "none":  # the fine-tuning test starts from the fp32 run
                    run["finetune"] = finetune_margin(str(trained.run_dir / "best.pt"), seed, tmp)
                runs.append(run)
                print(json.dumps(run), flush=True)
    worst = {
        "best_top1": min(r["best_top1"] for r in runs),
        "raw_loss": max(r["raw_loss"] for r in runs),
        "finetune_gain": min(r["finetune"]["gain"] for r in runs if "finetune" in r),
    }
    result = {
        "profile": "learning-margin",
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.time() - started,
        "command": f"python -m benchmarks.learning_margin --seeds {args.seeds}",
        "settings": TEST_SETTINGS,
        "finetune_settings": FINETUNE_SETTINGS,
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
        f"{worst['raw_loss']:.2f} (test needs < {THRESHOLDS['raw_loss']}), worst fine-tuning gain "
        f"{worst['finetune_gain']:.3f} (test needs > {THRESHOLDS['finetune_gain']}); wrote {args.out}"
    )
    return 0


def best_top1(final: dict[str, Any]) -> float:
    return max(final["ema"]["top1"], final["raw"]["top1"])


def finetune_margin(pretrained: str, seed: int, out_dir: str) -> dict[str, float]:
    """The fine-tuning test at `seed`: top-1 fine-tuned from `pretrained` and from scratch (two optimizers)."""
    base = {**FINETUNE_SETTINGS, "seed": seed, "out_dir": out_dir}
    runs: dict[str, dict[str, Any]] = {"tuned": {"init_from": pretrained}, "scratch": SCRATCH,
            "scratch_rmsprop": {**SCRATCH, "optimizer": "rmsprop", "lr": 0.1}}  # fmt: skip
    top1 = {}
    for name, overrides in runs.items():
        cfg = get_recipe("finetune", **base, **overrides, name=f"{name}-{seed}")
        with contextlib.redirect_stdout(io.StringIO()):
            top1[name] = best_top1(train(cfg).final)
    return {**top1, "gain": top1["tuned"] - max(top1["scratch"], top1["scratch_rmsprop"])}


if __name__ == "__main__":
    raise SystemExit(main())
