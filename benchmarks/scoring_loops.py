"""Scoring inside training loops, side by side in one run: our metric objects against torchmetrics' on the same
uint8 tensors in torch-fidelity's convention (update throughput, and the numbers: equal within 1e-3), what
torchmetrics' defaults change (antialiased resize, unseeded KID subsets, IS's sample std), and `fidelity` under
torchrun at 1 and 2 processes as whole processes (startup included).

Random weights with realistic batch-norm statistics (the real FID network cannot be downloaded here; the work
is the same); torchmetrics finds the same file in torch.hub's cache under torch-fidelity's name.

`python -m benchmarks.scoring_loops [--images 256] [--size 64] [--rounds 2]`
-> benchmarks/results/scoring-loops-cpu.json
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

import numpy as np
import torch
from PIL import Image

from inception_v3.scoring.metrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from inception_v3.utils.io import atomic_write_text

from .fidelity import make_weights
from .run import _cpu_name

TF_NAME = "weights-inception-2015-12-05-6726825d.pth"


def images(n: int, size: int, shift: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size))
    return (smooth * 200 + shift + torch.rand(n, 3, size, size, generator=g) * 30).clamp(0, 255).to(torch.uint8)


def fed(metric: Any, fake: torch.Tensor, real: torch.Tensor | None, batch: int) -> float:
    """Seconds to update `metric` with the tensors in batches."""
    start = time.perf_counter()
    for part in fake.split(batch):
        metric.update(part, real=False) if real is not None else metric.update(part)
    for part in real.split(batch) if real is not None else ():
        metric.update(part, real=True)
    return time.perf_counter() - start


def updates(fake: torch.Tensor, real: torch.Tensor, weights: str, rounds: int, batch: int = 32,
            feature: int = 2048) -> dict[str, Any]:  # fmt: skip
    """FID update throughput, ours vs torchmetrics' (antialias=False: torch-fidelity's resize), interleaved."""
    from torchmetrics.image.fid import FrechetInceptionDistance as TorchmetricsFID

    seconds: dict[str, list[float]] = {"torchmetrics": [], "ours": []}
    values = {}
    for _ in range(rounds):
        for name, make in (("torchmetrics", lambda: TorchmetricsFID(feature=feature, antialias=False)),
                           ("ours", lambda: FrechetInceptionDistance(feature=feature, weights=weights))):  # fmt: skip
            metric = make()
            seconds[name].append(fed(metric, fake, real, batch))
            values[name] = float(metric.compute())
    n = len(fake) + len(real)
    rows = {name: {"images_per_s": n / statistics.median(s), "seconds": s, "fid": values[name]}
            for name, s in seconds.items()}  # fmt: skip
    rows["ours"]["speedup_vs_torchmetrics"] = rows["ours"]["images_per_s"] / rows["torchmetrics"]["images_per_s"]
    rows["ours"]["relative_fid_difference"] = abs(values["ours"] - values["torchmetrics"]) / abs(values["torchmetrics"])
    return rows


def defaults(fake: torch.Tensor, real: torch.Tensor, weights: str) -> dict[str, Any]:
    """torchmetrics' defaults against torch-fidelity's numbers (ours in its convention)."""
    from torchmetrics.image.fid import FrechetInceptionDistance as TorchmetricsFID
    from torchmetrics.image.inception import InceptionScore as TorchmetricsIS
    from torchmetrics.image.kid import KernelInceptionDistance as TorchmetricsKID

    out: dict[str, Any] = {}
    fid_default = TorchmetricsFID(feature=2048)  # antialias=True since torchmetrics 1.8
    ours_fid = FrechetInceptionDistance(feature=2048, weights=weights)
    for metric in (fid_default, ours_fid):
        fed(metric, fake, real, 64)
    out["fid"] = {"torchmetrics_default": float(fid_default.compute()), "torch_fidelity": float(ours_fid.compute())}
    subset = min(len(fake), len(real)) // 2
    kids = []
    for _ in range(3):  # unseeded subsets: another number each time
        kid = TorchmetricsKID(feature=2048, subset_size=subset, subsets=20)
        fed(kid, fake, real, 64)
        kids.append(float(kid.compute()[0]))
    ours_kid = KernelInceptionDistance(feature=2048, subset_size=subset, subsets=20, weights=weights)
    fed(ours_kid, fake, real, 64)
    out["kid_mean"] = {"torchmetrics_default_runs": kids, "torch_fidelity": float(ours_kid.compute()[0])}
    is_default, ours_is = TorchmetricsIS(splits=4), InceptionScore(splits=4, weights=weights)
    for metric in (is_default, ours_is):
        fed(metric, fake, None, 64)
    (m1, s1), (m2, s2) = is_default.compute(), ours_is.compute()
    out["inception_score"] = {"torchmetrics_default": [float(m1), float(s1)], "torch_fidelity": [float(m2), float(s2)]}
    for row in out.values():  # the first number of each: FID, the first KID run, IS's mean
        theirs, ours = (v[0] if isinstance(v, list) else v for v in (row.get("torchmetrics_default",
                        row.get("torchmetrics_default_runs")), row["torch_fidelity"]))  # fmt: skip
        row["relative_difference"] = abs(theirs - ours) / abs(ours)
    return out


def torchrun_scoring(root: Path, fake: torch.Tensor, real: torch.Tensor, weights: str) -> dict[str, Any]:
    """`fidelity A B --fid` as a whole process: one process on the machine's threads, then two of one thread."""
    for name, x in (("a", fake), ("b", real)):
        (root / name).mkdir()
        for i, im in enumerate(x):
            Image.fromarray(im.permute(1, 2, 0).numpy()).save(root / name / f"{i:05d}.png")
    args = ["fidelity", str(root / "a"), str(root / "b"), "--fid", "--weights", weights, "--device", "cpu",
            "--workers", "0", "--no-cache", "--json"]  # fmt: skip
    rows = {}
    cpus = os.cpu_count() or 1
    for procs in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cpus // procs)), "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), "-m",
               "inception_v3.cli", *args]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        value = json.loads(done.stdout[done.stdout.index("{") :])["frechet_inception_distance"]
        rows[f"{procs} process(es)"] = {"seconds": time.perf_counter() - start, "fid": value}
    one, two = rows["1 process(es)"], rows["2 process(es)"]
    two["speedup_vs_one"] = one["seconds"] / two["seconds"]
    two["relative_fid_difference"] = abs(two["fid"] - one["fid"]) / abs(one["fid"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per side")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/scoring-loops-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["TORCH_HOME"] = str(root / "torch")
        weights = root / "torch" / "hub" / "checkpoints" / TF_NAME
        make_weights(weights)
        fake, real = images(args.images, args.size, 0, 0), images(args.images, args.size, 40, 1)
        result = {"benchmark": "scoring-loops", "device": "cpu", "images_per_side": args.images, "size": args.size,
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": torch.get_num_threads(),
                  "command": f"python -m benchmarks.scoring_loops --images {args.images} --size {args.size} "
                             f"--rounds {args.rounds}",
                  "machine": {"platform": platform.platform(), "cpu_model": _cpu_name(), "cpus": os.cpu_count(),
                              "torch": torch.__version__},
                  "updates": updates(fake, real, str(weights), args.rounds),
                  "defaults": defaults(fake, real, str(weights)),
                  "torchrun": torchrun_scoring(root, fake, real, str(weights))}  # fmt: skip
    print(json.dumps({k: result[k] for k in ("updates", "torchrun")}, indent=1))
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
