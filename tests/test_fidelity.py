"""`inception-v3 fidelity`: IS, FID, KID and precision/recall equal to torch-fidelity's and clean-fid's own
numbers given one network file (random weights with realistic batch-norm statistics, the full 299x299
FID graph) and the same images (PNG and JPEG, 52x40: neither square nor 299); the inputs and bad inputs."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import assert_close, num_threads, realistic_bn
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.data.formats import open_source
from inception_v3.data.image_io import decode_rgb
from inception_v3.errors import UserError
from inception_v3.evaluation.extraction import cache_dir
from inception_v3.models.inception import pooled_taps
from inception_v3.scoring import calculate_metrics, save_stats

pytestmark = pytest.mark.xdist_group("fidelity")  # its module fixture is built once

N = 72  # per input: more than the 64-d tap, so FID's covariances have full rank


def image(rng: np.random.Generator, shift: int) -> np.ndarray:
    """A smooth, image-like 52 x 40 RGB picture (gradients, a blob, noise)."""
    yy, xx = np.mgrid[0:40, 0:52]
    base = rng.uniform(0, 255, 3)[None, None] * (xx[..., None] / 52) + rng.uniform(0, 120, 3)[None, None]
    blob = 90 * np.exp(-((xx - rng.uniform(0, 52)) ** 2 + (yy - rng.uniform(0, 40)) ** 2) / 80.0)[..., None]
    return np.clip(base + blob + rng.normal(0, 12, (40, 52, 3)) + shift, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fidelity")
    torch.manual_seed(0)
    model = realistic_bn(create_model("inception_v3_fid"), 299)
    with torch.no_grad():  # logits of a trained network's size (a few units), not a random layer's hundreds
        model.fc.weight.mul_(0.01)
    weights = root / "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's layout, which torch-fidelity also reads
    torch.save(model.state_dict(), weights)
    rng = np.random.default_rng(0)
    for name, shift, n in (("a", 0, N), ("b", 40, N), ("small", 0, 12)):
        (root / name).mkdir()
        for i in range(n):
            suffix = "jpg" if i % 3 == 0 else "png"
            Image.fromarray(image(rng, shift)).save(root / name / f"{i:03d}.{suffix}", quality=95)
    return {"root": root, "weights": weights, "a": root / "a", "b": root / "b", "small": root / "small"}


def ours(setup: dict[str, Path], convention: str, **kw: object) -> dict[str, float]:
    return calculate_metrics(str(setup["a"]), str(setup["b"]), convention=convention, weights=str(setup["weights"]),
                             dims=64, kid_subset_size=50, workers=0, device="cpu", cache=False, show_progress=False,
                             **kw)  # fmt: skip


def test_torch_fidelity_convention_equals_torch_fidelity(setup: dict[str, Path], tmp_path: Path) -> None:
    import torch_fidelity

    theirs = torch_fidelity.calculate_metrics(
        input1=str(setup["a"]), input2=str(setup["b"]), cuda=False, isc=True, fid=True, kid=True, prc=True,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(setup["weights"]),
        feature_layer_fid="64", feature_layer_kid="64", feature_layer_prc="64", kid_subset_size=50, verbose=False,
        cache=True, cache_root=str(tmp_path), input2_cache_name="real", batch_size=36,
    )  # fmt: skip
    mine = ours(setup, "torch-fidelity", isc=True, fid=True, kid=True, prc=True)
    assert set(mine) == set(theirs)
    for key in ("inception_score_mean", "inception_score_std", "frechet_inception_distance",
                "kernel_inception_distance_mean", "kernel_inception_distance_std"):  # fmt: skip
        assert mine[key] == pytest.approx(theirs[key], rel=1e-3), key
    # precision and recall count samples inside k-NN radii: torch-fidelity's features come from another path
    # (its own network in NCHW, batches of 36), so a distance that ties a radius may flip one sample of 72
    for key in ("precision", "recall", "f_score"):
        assert mine[key] == pytest.approx(theirs[key], abs=1 / N + 1e-9), key
    assert 0 < mine["precision"] < 1 or 0 < mine["recall"] < 1  # not a degenerate comparison
    # torch-fidelity's cached statistics and features of input 2 stand in for its images
    stats, feats = (tmp_path / f"real-inception-v3-compat-{kind}-64.pt" for kind in ("stat-fid", "features"))
    assert stats.is_file() and feats.is_file()
    for ref in (stats, feats):
        options = {"dims": 64, "kid_subset_size": 50, "workers": 0, "device": "cpu", "show_progress": False}
        cached = calculate_metrics(
            str(setup["a"]), str(ref), fid=True, kid=ref == feats, weights=str(setup["weights"]), **options
        )  # type: ignore[arg-type]
        for key, value in cached.items():
            assert value == pytest.approx(theirs[key], rel=1e-3), (ref.name, key)


def test_clean_fid_convention_equals_clean_fid(setup: dict[str, Path]) -> None:
    from cleanfid import fid as cleanfid

    model = create_model("inception_v3_fid")
    model.load_state_dict(torch.load(setup["weights"], weights_only=True))
    model.eval()

    class Extractor(torch.nn.Module):  # clean-fid hands over 0..255 floats at 299x299; its network does (x-128)/128
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return pooled_taps(model, (x - 128) / 128, [64])[64]

    def features(folder: Path) -> np.ndarray:
        return cleanfid.get_folder_features(str(folder), Extractor(), num_workers=0, batch_size=36,
                                            device=torch.device("cpu"), mode="clean", verbose=False)  # fmt: skip

    fa, fb = features(setup["a"]), features(setup["b"])
    theirs_fid = cleanfid.frechet_distance(np.mean(fa, axis=0), np.cov(fa, rowvar=False), np.mean(fb, axis=0),
                                           np.cov(fb, rowvar=False))  # fmt: skip
    np.random.seed(7)  # clean-fid draws its KID subsets from numpy's global generator
    theirs_kid = cleanfid.kernel_distance(fa, fb, num_subsets=100, max_subset_size=50)
    mine = ours(setup, "clean-fid", fid=True, kid=True, seed=7)
    assert mine["frechet_inception_distance"] == pytest.approx(float(theirs_fid), rel=1e-3)
    assert mine["kernel_inception_distance_mean"] == pytest.approx(theirs_kid, rel=1e-3)
    # clean-fid's statistics files of input 2 (as make_custom_stats writes them) stand in for its images
    folder = setup["root"] / "clean-stats"
    folder.mkdir(exist_ok=True)
    np.savez_compressed(folder / "b_clean_custom_na.npz", mu=np.mean(fb, axis=0), sigma=np.cov(fb, rowvar=False))
    np.savez_compressed(folder / "b_clean_custom_na_kid.npz", feats=fb)
    for name, key, value in (("b_clean_custom_na.npz", "frechet_inception_distance", theirs_fid),
                             ("b_clean_custom_na_kid.npz", "kernel_inception_distance_mean", theirs_kid)):  # fmt: skip
        cached = calculate_metrics(str(setup["a"]), str(folder / name), fid=key.startswith("frechet"),
                                   kid=key.startswith("kernel"), convention="clean-fid", seed=7, dims=64,
                                   kid_subset_size=50, weights=str(setup["weights"]), workers=0, device="cpu",
                                   show_progress=False)  # fmt: skip
        assert cached[key] == pytest.approx(float(value), rel=1e-3), name


def test_inputs_zip_generator_tensors_and_the_cache(setup: dict[str, Path], tmp_path: Path) -> None:
    common = {"isc": True, "isc_splits": 4, "weights": str(setup["weights"]), "workers": 0, "device": "cpu",
              "show_progress": False}  # fmt: skip
    folder = calculate_metrics(str(setup["small"]), **common)
    assert len(list(cache_dir().glob("*.npz"))) >= 1  # the folder's features were cached
    assert calculate_metrics(str(setup["small"]), **common) == folder  # exact: a cache hit
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(setup["small"].iterdir()):
            zf.write(p, f"imgs/{p.name}")
    # exact: the same 12 images in one batch of 12 on the same thread count (the same computation)
    assert calculate_metrics(str(archive), **common, cache=False) == folder
    # the same pixels from Python: a uint8 tensor (exact: one batch of 12 again), and a generator called for
    # batches of odd sizes on another thread count: another path through the kernels, so within a tolerance
    source = open_source(str(setup["small"]))
    pixels = torch.stack([torch.from_numpy(decode_rgb(source.stored(i))).permute(2, 0, 1) for i in range(len(source))])
    assert calculate_metrics(pixels, **common) == folder
    for batch, threads in ((3, 1), (5, 2), (7, 1)):
        drawn = iter(pixels.split(batch))
        with num_threads(threads):
            drawn_metrics = calculate_metrics(lambda n, d=drawn: next(d)[:n], num_samples=12, batch_size=batch,
                                              **common)  # fmt: skip
        assert_close(drawn_metrics, folder)
    fm = open_source("fashion-mnist:test")  # Fashion-MNIST by name as a reference set
    assert len(fm) == 10000 and decode_rgb(fm.stored(0)).shape == (28, 28, 3)


def test_bad_inputs_one_line_each(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                  ) -> None:  # fmt: skip
    w = ["--weights", str(setup["weights"]), "--device", "cpu", "--workers", "0"]
    small, empty = str(setup["small"]), tmp_path / "empty"
    empty.mkdir()
    stats = tmp_path / "stats.npz"
    save_stats(stats, np.zeros((3, 64)), np.zeros(64), np.eye(64), "pytorch-fid")
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in sorted(setup["small"].iterdir()):
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "broken.png").write_bytes(b"not a png")
    cases = [
        (["fidelity", small, small, "--kid", *w], "lower --kid-subset-size to at most 12"),
        (["fidelity", str(empty), small, "--fid", *w], "holds no images"),
        (["fidelity", small, "wds:" + str(tmp_path) + "/none-{0..1}.tar", "--fid", *w], "matches no shard"),
        (["fidelity", str(stats), small, "--fid", "--dims", "64", *w], "--convention torch-fidelity"),
        (["fidelity", str(stats), small, "--fid", "--dims", "768", "--convention", "pytorch-fid", *w], "asked for 768"),
        (["fidelity", small, "--fid", *w], "compare two inputs"),
        (["fidelity", small, *w], "ask for at least one metric"),
        (["fidelity", str(bad), "--isc", "--isc-splits", "2", *w], "or pass --skip-bad-images"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        lines = [line for line in err.replace("\r", "\n").splitlines() if "error" in line]  # not the progress bar
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, (args, err)
    # from Python, the same error names the Python argument where the command line names its option
    with pytest.raises(UserError, match="lower `kid_subset_size` to at most 12"):
        calculate_metrics(small, small, kid=True, weights=str(setup["weights"]), device="cpu", workers=0)
    with pytest.raises(UserError, match="or pass `skip_bad_images=True`"):
        calculate_metrics(str(bad), isc=True, isc_splits=2, weights=str(setup["weights"]), device="cpu", workers=0)
    # FID from fewer images than the tap has dimensions: the tools' number, with one note saying what it is
    assert main(["fidelity", small, small, "--fid", "--json", *w]) == 0
    out, err = capsys.readouterr()
    assert np.isfinite(json.loads(out)["frechet_inception_distance"])  # the tools' arithmetic on a rank-11 covariance
    assert "covariance is rank-deficient (a full-rank estimate needs more than 2048 images)" in err
    assert main(["fidelity", str(bad), "--isc", "--isc-splits", "2", "--skip-bad-images", "--json", *w]) == 0
    out, err = capsys.readouterr()
    assert "skipped 1 unreadable image(s)" in err and "broken.png" in err
    assert json.loads(out)["inception_score_mean"] > 1


def test_calculate_metrics_takes_the_settings_fields() -> None:
    """The typed keyword signature and the settings type (which the command's options come from) agree."""
    import dataclasses
    import inspect

    from inception_v3.scoring import ScoringSettings

    params = inspect.signature(calculate_metrics).parameters
    for f in dataclasses.fields(ScoringSettings):
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY and params[f.name].default == f.default, f.name


def test_fid_from_fewer_images_than_dimensions_equals_every_tool() -> None:
    """150 images at the 192-d tap: rank-deficient covariances, where the three tools still give a number; each
    convention gives its tool's, from the same features. At pool3 only torch-fidelity's is cheap enough for the
    suite (2 s; scipy's sqrtm in the other two takes 11 s each): `scripts/small_sample_fid.py` runs all three
    on 300 Fashion-MNIST images per side (benchmarks/results/small_sample_fid.json)."""
    from cleanfid import fid as cleanfid
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from inception_v3.scoring import CONVENTIONS, fid_from_statistics, statistics

    rng = np.random.default_rng(0)
    mix = rng.normal(0, 0.05, (48, 192))
    a, b = (np.abs(rng.normal(0, 1, (150, 48)) @ mix + shift).astype(np.float32) for shift in (0.3, 0.35))
    stats = {name: [statistics(f, CONVENTIONS[name]) for f in (a, b)] for name in CONVENTIONS}
    (m1, s1), (m2, s2) = stats["pytorch-fid"]
    theirs = {"pytorch-fid": calculate_frechet_distance(m1, s1, m2, s2),
              "clean-fid": cleanfid.frechet_distance(*stats["clean-fid"][0], *stats["clean-fid"][1]),
              "torch-fidelity": fid_statistics_to_metric(*({"mu": m, "sigma": s} for m, s in stats["torch-fidelity"]),
                                                         False)["frechet_inception_distance"]}  # fmt: skip
    for name, value in theirs.items():
        ours = fid_from_statistics(*stats[name][0], *stats[name][1], CONVENTIONS[name])
        assert ours == pytest.approx(float(value), rel=1e-3) and ours > 0, name
    mix = rng.normal(0, 0.05, (64, 2048))  # pool3, 300 images a side: rank 299
    a, b = (np.abs(rng.normal(0, 1, (300, 64)) @ mix + shift).astype(np.float32) for shift in (0.3, 0.35))
    conv = CONVENTIONS["torch-fidelity"]
    (m1, s1), (m2, s2) = statistics(a, conv), statistics(b, conv)
    theirs = fid_statistics_to_metric({"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2}, False)
    ours = fid_from_statistics(m1, s1, m2, s2, conv)
    assert ours == pytest.approx(float(theirs["frechet_inception_distance"]), rel=1e-3) and ours > 0
