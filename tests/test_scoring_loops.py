"""Scoring where generative models are trained: the metric objects give `calculate_metrics`' numbers whatever the
batches, equal torchmetrics' own FID in torch-fidelity's convention, and, like `fidelity` itself, give one
process's numbers over two torchrun processes; reference statistics stand in for their images."""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import CROSS_PATH_REL, assert_close, realistic_bn
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.errors import UserError
from inception_v3.scoring import CONVENTIONS, ScoringSettings, calculate_metrics
from inception_v3.scoring.calculate import references
from inception_v3.scoring.metrics import (
    FrechetInceptionDistance,
    InceptionScore,
    KernelInceptionDistance,
    PrecisionRecall,
)

pytestmark = pytest.mark.xdist_group("scoring_loops")  # its module fixture is built once

TF_NAME = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name, which torchmetrics downloads


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The FID graph with random weights and realistic batch-norm statistics; uint8 images of two sizes."""
    root = tmp_path_factory.mktemp("loops")
    torch.manual_seed(0)
    model = realistic_bn(create_model("inception_v3_fid"), 299)
    with torch.no_grad():
        model.fc.weight.mul_(0.01)  # logits of a trained network's size
    weights = root / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), weights)
    g = torch.Generator().manual_seed(0)

    def images(n: int, h: int, w: int, shift: int) -> torch.Tensor:
        smooth = torch.nn.functional.interpolate(torch.rand(n, 3, h // 8, w // 8, generator=g), size=(h, w))
        return (smooth * 180 + shift + torch.rand(n, 3, h, w, generator=g) * 40).clamp(0, 255).to(torch.uint8)

    return {"root": root, "weights": str(weights), "a": images(31, 40, 52, 0), "b": images(29, 40, 52, 30),
            "c": images(17, 64, 64, 10), "d": images(19, 64, 64, 40)}  # fmt: skip


def common(setup: dict[str, object]) -> dict[str, object]:
    return {"weights": setup["weights"], "device": "cpu", "workers": 0, "show_progress": False}


def test_metric_objects_give_calculate_metrics_numbers(setup: dict[str, object]) -> None:
    """Batches of odd sizes in, each convention's FID, and KID, IS and precision/recall with the same random
    subsets, within the cross-path tolerance (the network sees other batches than calculate_metrics' one pass)."""
    a, b = setup["a"], setup["b"]
    for convention in CONVENTIONS:
        fid = FrechetInceptionDistance(feature=64, convention=convention, weights=setup["weights"])
        for batch in a.split(7):  # type: ignore[attr-defined]
            fid(batch, real=False)  # calling it is update() (torchmetrics' forward would score the batch alone)
        for batch in b.split(5):  # type: ignore[attr-defined]
            fid.update(batch, real=True)
        want = calculate_metrics(a, b, fid=True, dims=64, convention=convention, **common(setup))
        assert_close({"frechet_inception_distance": float(fid.compute())}, want)
    a, b = a[:16], b[:14]  # type: ignore[index]  # the Inception Score runs the whole network: fewer images
    objects = {"kid": KernelInceptionDistance(feature=64, subsets=20, subset_size=10, weights=setup["weights"]),
               "isc": InceptionScore(splits=3, weights=setup["weights"]),
               "prc": PrecisionRecall(feature=64, weights=setup["weights"])}  # fmt: skip
    for metric in objects.values():
        for batch in a.split(3):  # type: ignore[attr-defined]
            metric.update(batch, real=False)
        if not isinstance(metric, InceptionScore):
            for batch in b.split(7):  # type: ignore[attr-defined]
                metric.update(batch, real=True)
    want = calculate_metrics(a, b, isc=True, kid=True, prc=True, dims=64, isc_splits=3, kid_subsets=20,
                             kid_subset_size=10, **common(setup))  # fmt: skip
    kid, isc, prc = objects["kid"].compute(), objects["isc"].compute(), objects["prc"].compute()
    assert_close({"kernel_inception_distance_mean": float(kid[0]), "kernel_inception_distance_std": float(kid[1]),
                  "inception_score_mean": float(isc[0]), "inception_score_std": float(isc[1])},
                 {k: v for k, v in want.items() if k.startswith(("kernel", "inception"))})  # fmt: skip
    for got, key in zip(prc, ("precision", "recall", "f_score"), strict=True):
        assert float(got) == pytest.approx(want[key], abs=1 / 14 + 1e-9)  # a neighbour radius tie flips one image
    # reset() keeps the real side when asked; floats in [0, 1] with normalize=True are the same images
    fid = FrechetInceptionDistance(feature=64, reset_real_features=False, normalize=True, weights=setup["weights"])
    fid.update(b.float() / 255, real=True)  # type: ignore[attr-defined]
    fid.update(a.float() / 255, real=False)  # type: ignore[attr-defined]
    first = float(fid.compute())
    fid.reset()
    fid.update(a.float() / 255, real=False)  # type: ignore[attr-defined]
    assert float(fid.compute()) == first  # exact: the same sums from the same batches
    once = calculate_metrics(a, b, fid=True, dims=64, **common(setup))["frechet_inception_distance"]
    assert first == pytest.approx(once, rel=CROSS_PATH_REL)


def test_metric_objects_refuse_bad_input_in_one_line(setup: dict[str, object]) -> None:
    fid = FrechetInceptionDistance(feature=64, weights=setup["weights"])
    cases = [
        (lambda: fid.update(torch.rand(2, 3, 8, 8), real=True), "expected uint8 images"),
        (lambda: fid.update(torch.zeros(2, 8, 8, dtype=torch.uint8), real=True), "shape N x 3 x H x W"),
        (lambda: FrechetInceptionDistance(feature=64, normalize=True, weights=setup["weights"]).update(
            torch.full((2, 3, 8, 8), 2.0), real=True), "must lie in [0, 1]"),
        (fid.compute, "FID needs at least 2 fake images; 0 were given to update()"),
        (lambda: FrechetInceptionDistance(feature=65, weights=setup["weights"]), "invalid `feature` 65"),
        (lambda: InceptionScore(weights=setup["weights"]).update(setup["a"], real=True), "update(images) without"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            call()


def test_torchmetrics_fid_equals_ours_in_its_convention(setup: dict[str, object]) -> None:
    """torchmetrics' own FrechetInceptionDistance (antialias=False: torch-fidelity's resize), its real default
    extractor downloading torch-fidelity's file through torch.hub (placed in torch.hub's cache here), on images
    of two sizes: ours in the torch-fidelity convention within 1e-3."""
    from torchmetrics.image.fid import FrechetInceptionDistance as TorchmetricsFID

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / TF_NAME).write_bytes(Path(setup["weights"]).read_bytes())  # type: ignore[arg-type]
    for real, fake in ((setup["b"], setup["a"]), (setup["d"], setup["c"])):
        theirs, ours = TorchmetricsFID(feature=64, antialias=False), FrechetInceptionDistance(
            feature=64, weights=setup["weights"])  # fmt: skip
        for metric in (theirs, ours):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        assert float(ours.compute()) == pytest.approx(float(theirs.compute()), rel=1e-3)


SCRIPT = """
import json, sys, torch
from inception_v3.cli import main
from inception_v3.scoring.metrics import (FrechetInceptionDistance, InceptionScore, KernelInceptionDistance,
                                          PrecisionRecall)

torch.distributed.init_process_group("gloo")
rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
weights = sys.argv[3]
objects = {"fid": FrechetInceptionDistance(feature=64, weights=weights, real_samples=len(b), fake_samples=len(a)),
           "kid": KernelInceptionDistance(feature=64, subsets=20, subset_size=10, weights=weights, real_samples=len(b),
                                          fake_samples=len(a)),
           "isc": InceptionScore(splits=3, weights=weights, fake_samples=len(a)),
           "prc": PrecisionRecall(feature=64, weights=weights, real_samples=len(b), fake_samples=len(a))}
def share(x):  # a DistributedSampler without shuffling: padded by repeating the first images, every world-th
    padded = torch.cat([x, x[: (-len(x)) % world]])
    return padded[rank::world]
for name, metric in objects.items():
    for batch in share(a).split(4):
        metric.update(batch, real=False)
    if name != "isc":
        for batch in share(b).split(3):
            metric.update(batch, real=True)
values = {}
for name, metric in objects.items():
    out = metric.compute()
    values[name] = [float(v) for v in (out if isinstance(out, tuple) else (out,))]
if rank == 0:
    print("METRICS " + json.dumps(values), flush=True)
main(sys.argv[4:])
torch.distributed.destroy_process_group()  # the script made it: without this gloo can abort at exit
"""


def test_two_torchrun_processes_give_one_process_numbers(setup: dict[str, object], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Under torchrun (2 CPU processes, gloo), odd counts: the metric objects (a sampler's padding dropped) and
    `fidelity` (images split across the processes, gathered in order) give one process's numbers."""
    from PIL import Image

    a, b = setup["a"][:15], setup["b"][:13]  # type: ignore[index]  # odd counts
    for name, images in (("a", a), ("b", b)):
        torch.save(images, tmp_path / f"{name}.pt")
        (tmp_path / name).mkdir()
        for i, im in enumerate(images):  # type: ignore[attr-defined]
            Image.fromarray(im.permute(1, 2, 0).numpy()).save(tmp_path / name / f"{i:03d}.png")
    (tmp_path / "script.py").write_text(SCRIPT)
    args = ["fidelity", str(tmp_path / "a"), str(tmp_path / "b"), "--isc", "--isc-splits", "3", "--fid", "--kid",
            "--kid-subsets", "20", "--kid-subset-size", "10", "--prc", "--dims", "64", "--weights", setup["weights"],
            "--device", "cpu", "--workers", "0", "--no-cache", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(tmp_path / "script.py"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                           str(setup["weights"]), *args], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("METRICS "))
    objects = json.loads(line.removeprefix("METRICS "))
    cli = json.loads(done.stdout[done.stdout.index("{", done.stdout.index("\n", done.stdout.index("METRICS"))) :])
    assert main(args) == 0  # one process
    one = json.loads(capsys.readouterr().out)
    assert_close({k: v for k, v in cli.items() if not k.startswith(("precision", "recall", "f_score"))},
                 {k: v for k, v in one.items() if not k.startswith(("precision", "recall", "f_score"))})  # fmt: skip
    got = {"frechet_inception_distance": objects["fid"][0], "kernel_inception_distance_mean": objects["kid"][0],
           "kernel_inception_distance_std": objects["kid"][1], "inception_score_mean": objects["isc"][0],
           "inception_score_std": objects["isc"][1]}  # fmt: skip
    assert_close(got, {k: one[k] for k in got})
    for value, key in zip(objects["prc"], ("precision", "recall", "f_score"), strict=True):
        assert value == pytest.approx(one[key], abs=1 / 13 + 1e-9) and cli[key] == pytest.approx(one[key], abs=1 / 13)


def test_reference_statistics_stand_in_for_their_images(setup: dict[str, object], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Statistics saved once (FID, KID, precision/recall from the file equal the images'), and a named reference
    (clean-fid's published cifar10-train statistics) through the real download code from a server on
    127.0.0.1 serving files in clean-fid's format."""
    a, b = setup["a"], setup["b"]
    stats = tmp_path / "b.npz"
    base = {**common(setup), "dims": 64}
    calculate_metrics(b, save_stats=str(stats), **base)
    from_images = calculate_metrics(a, b, fid=True, kid=True, prc=True, kid_subset_size=10, **base)
    from_stats = calculate_metrics(a, str(stats), fid=True, kid=True, prc=True, kid_subset_size=10, **base)
    assert from_stats == from_images  # exact: the same features, stored
    with pytest.raises(UserError, match="asked for 64-d with `convention` clean-fid"):
        calculate_metrics(a, str(stats), fid=True, convention="clean-fid", **base)
    # clean-fid's published statistics by name, in its convention at pool3, served by a mirror
    a, b = a[:12], b[:12]  # type: ignore[index]  # pool3 runs the whole network: fewer images
    clean = {**common(setup), "convention": "clean-fid", "kid_subset_size": 6}
    calculate_metrics(b, save_stats=str(tmp_path / "b2048.npz"), **clean)
    served = tmp_path / "served"
    served.mkdir()
    with np.load(tmp_path / "b2048.npz") as f:
        np.savez_compressed(served / "cifar10_clean_train_32.npz", mu=f["mu"], sigma=f["sigma"])
        np.savez_compressed(served / "cifar10_clean_train_32_kid.npz", feats=f["features"])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("INCEPTION_V3_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    try:  # (FID's moments compared directly: a 2048 x 2048 matrix square root takes ~20 s here)
        named = calculate_metrics(a, "cifar10-train", kid=True, **clean)
        moments = references("cifar10-train", ScoringSettings(fid=True, convention="clean-fid"))
    finally:
        server.shutdown()
        server.server_close()
    assert named == calculate_metrics(a, b, kid=True, **clean)
    with np.load(tmp_path / "b2048.npz") as f:
        assert np.array_equal(moments.mu, f["mu"]) and np.array_equal(moments.sigma, f["sigma"])
    with pytest.raises(UserError, match="published statistics are clean-fid's"):
        calculate_metrics(a, "cifar10-train", fid=True, **common(setup))
