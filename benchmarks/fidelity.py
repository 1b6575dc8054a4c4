"""FID as whole processes, side by side in one run: pytorch-fid's and torch-fidelity's command lines against
`inception-v3 fid` (pytorch-fid's) and `inception-v3 fidelity` in each one's convention, on the same PNGs with
the same network file (random weights with realistic batch-norm statistics: the real file cannot be downloaded
here; the work is the same). Wall time per process (startup included) and the FID each one prints.

`python -m benchmarks.fidelity [--images 800] [--dims 768]` -> benchmarks/results/fidelity-<device>.json (FID
needs more images than feature dimensions for a full-rank covariance: 800 per input at the 768-d tap, which
runs the network through Mixed_6e)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inception_v3 import create_model
from inception_v3.utils.io import atomic_write

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"  # the name pytorch-fid looks for in torch.hub's cache


def make_inputs(root: Path, n: int, size: int = 64) -> tuple[Path, Path]:
    """Two folders of `n` smooth random size x size PNGs each, the second brighter."""
    rng = np.random.default_rng(0)
    folders = (root / "a", root / "b")
    for folder, shift in zip(folders, (0, 40), strict=True):
        folder.mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 216, (size // 8, size // 8, 3)).astype(np.uint8)
            picture = Image.fromarray(small).resize((size, size), Image.BICUBIC)
            Image.fromarray(np.clip(np.asarray(picture, dtype=np.int16) + shift, 0, 255).astype(np.uint8)).save(
                folder / f"{i:05d}.png"
            )
    return folders


@torch.no_grad()
def make_weights(path: Path) -> None:
    """The FID graph with random weights and batch-norm statistics from a few train-mode passes."""
    torch.manual_seed(0)
    model = create_model("inception_v3_fid").train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    for _ in range(3):
        model(torch.rand(4, 3, 299, 299) * 2 - 1)
    model.fc.weight.mul_(0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.eval().state_dict(), path)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {done.stderr[-1500:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=800, help="PNGs per input (default 800)")
    parser.add_argument("--dims", type=int, default=768, choices=[64, 192, 768, 2048])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--out", help="JSON to write (default: benchmarks/results/fidelity-<device>.json)")
    args = parser.parse_args(argv)
    out = Path(args.out or f"benchmarks/results/fidelity-{args.device}.json")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, b = make_inputs(root / "images", args.images)
        weights = root / "torch" / "hub" / "checkpoints" / WEIGHTS_NAME
        make_weights(weights)
        env = {**os.environ, "TORCH_HOME": str(root / "torch"), "PYTHONWARNINGS": "ignore"}
        py, dims, cpu = sys.executable, str(args.dims), args.device == "cpu"
        common = ["--fid", "--dims", dims, "--weights", str(weights), "--device", args.device, "--no-cache",
                  "--workers", str(args.workers), "--json"]  # fmt: skip
        runs = {
            "pytorch-fid": [py, "-m", "pytorch_fid", str(a), str(b), "--dims", dims, "--device", args.device,
                            "--num-workers", str(args.workers)],
            "torch-fidelity": [py, "-m", "torch_fidelity.fidelity", "--input1", str(a), "--input2", str(b), "--fid",
                               "--feature-extractor", "inception-v3-compat", "--feature-layer-fid", dims,
                               "--feature-extractor-weights-path", str(weights), "--no-cache", "--json",
                               *(["--cpu"] if cpu else [])],
            "ours: fid": [py, "-m", "inception_v3.cli", "fid", str(a), str(b), "--dims", dims, "--weights",
                          str(weights), "--device", args.device, "--no-cache", "--workers", str(args.workers),
                          "--json"],
            "ours (pytorch-fid convention)": [py, "-m", "inception_v3.cli", "fidelity", str(a), str(b), *common,
                                              "--convention", "pytorch-fid"],
            "ours (torch-fidelity convention)": [py, "-m", "inception_v3.cli", "fidelity", str(a), str(b), *common,
                                                 "--convention", "torch-fidelity"],
        }  # fmt: skip
        rows: dict[str, dict[str, Any]] = {}
        for name, cmd in runs.items():
            seconds, stdout = timed(cmd, env)
            if name == "pytorch-fid":
                value = float(re.search(r"FID:\s*([-0-9.eE+]+)", stdout).group(1))  # type: ignore[union-attr]
            elif name == "ours: fid":
                value = json.loads(stdout)["fid"]
            else:
                value = json.loads(stdout[stdout.index("{") :])["frechet_inception_distance"]
            rows[name] = {"seconds": seconds, "fid": value}
            print(f"{name:<34}{seconds:8.1f} s   FID {value:.6f}", flush=True)
    for ours, ref in (("ours: fid", "pytorch-fid"), ("ours (pytorch-fid convention)", "pytorch-fid"),
                      ("ours (torch-fidelity convention)", "torch-fidelity")):  # fmt: skip
        rows[ours]["speedup_vs_" + ref] = rows[ref]["seconds"] / rows[ours]["seconds"]
        rows[ours]["relative_fid_difference_vs_" + ref] = abs(rows[ours]["fid"] - rows[ref]["fid"]) / abs(
            rows[ref]["fid"]
        )
    result = {"benchmark": "fidelity", "device": args.device, "images_per_input": args.images, "dims": args.dims,
              "workers": args.workers, "image_size": 64, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "torch": torch.__version__},
              "command": "python -m benchmarks.fidelity " + " ".join(argv or sys.argv[1:]), "runs": rows}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: Path(p).write_text(json.dumps(result, indent=1)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
