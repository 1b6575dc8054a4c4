"""FID from fewer images than pool3 has dimensions, against the three tools' own arithmetic (issue 26).

The suite checks this at the 192-d tap; at pool3 each tool's `sqrtm` of a 2048 x 2048 product takes tens of
seconds on two cores, too long for it. This script runs the pool3 case: 300 Fashion-MNIST test images per
side (rank-deficient covariances), pool3 features of a random-weight FID network with the batch-norm
statistics of these images, and the FID of pytorch-fid, clean-fid and torch-fidelity from the same
features next to ours in each convention. Writes benchmarks/results/small_sample_fid.json.

Usage: python scripts/small_sample_fid.py [--images 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from cleanfid import fid as cleanfid
from pytorch_fid.fid_score import calculate_frechet_distance
from torch_fidelity.metric_fid import fid_statistics_to_metric

from inception_v3 import create_model
from inception_v3.data.formats import open_source
from inception_v3.data.image_io import decode_rgb
from inception_v3.models.inception import pooled_taps
from inception_v3.scoring import CONVENTIONS, fid_from_statistics, statistics
from inception_v3.scoring.conventions import prepare_pytorch_fid

OUT = Path("benchmarks/results/small_sample_fid.json")


def tool_fid(tool: str, m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """The FID as the named tool computes it from two means and covariances."""
    if tool == "pytorch-fid":
        return float(calculate_frechet_distance(m1, s1, m2, s2))
    if tool == "clean-fid":
        return float(cleanfid.frechet_distance(m1, s1, m2, s2))
    stats = {"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2}
    return float(fid_statistics_to_metric(*stats, False)["frechet_inception_distance"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images per side (fewer than 2048)")
    n = parser.parse_args().images
    torch.manual_seed(0)
    source = open_source("fashion-mnist:test")
    pixels = torch.stack([torch.from_numpy(decode_rgb(source.stored(i))).permute(2, 0, 1) for i in range(2 * n)])
    net = create_model("inception_v3_fid", bn_momentum=1.0)
    with torch.no_grad():
        net.train()(prepare_pytorch_fid(pixels[torch.randperm(2 * n)[:64]]))  # batch-norm statistics of these images
        net.eval()
        start = time.perf_counter()
        feats = torch.cat([pooled_taps(net, prepare_pytorch_fid(b), [2048])[2048] for b in pixels.split(50)])
    forward_s = time.perf_counter() - start
    a, b = feats[:n].numpy(), feats[n:].numpy()
    results = {}
    for name, conv in CONVENTIONS.items():
        (m1, s1), (m2, s2) = statistics(a, conv), statistics(b, conv)
        t0 = time.perf_counter()
        theirs = tool_fid(name, m1, s1, m2, s2)
        t1 = time.perf_counter()
        ours = fid_from_statistics(m1, s1, m2, s2, conv)
        t2 = time.perf_counter()
        rel = abs(ours - theirs) / abs(theirs)
        results[name] = {
            "theirs": theirs,
            "ours": ours,
            "relative_difference": rel,
            "within_1e-3": rel < 1e-3,
            "seconds_theirs": round(t1 - t0, 1),
            "seconds_ours": round(t2 - t1, 1),
        }
        print(f"{name:15s} theirs {theirs:.6f}  ours {ours:.6f}  relative difference {rel:.1e}", flush=True)
    report = {
        "images_per_side": n,
        "dims": 2048,
        "rank": int(np.linalg.matrix_rank(np.cov(a, rowvar=False))),
        "forward_seconds": round(forward_s, 1),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "conventions": results,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    ok = all(r["within_1e-3"] for r in results.values())
    print(f"wrote {OUT}; every convention within 1e-3 of its tool: {ok}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
