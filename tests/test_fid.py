"""FID: the 2015 graph as a preset, and agreement with pytorch-fid given the same weights and images."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as pf_inception

from helpers import realistic_bn
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.data.folders import open_inputs
from inception_v3.scoring.calculate import ScoringSettings, features

pytestmark = pytest.mark.xdist_group("fid")  # its module fixture is built once


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random FID-network weights in pytorch-fid's file layout (the real file cannot be downloaded here),
    and two folders of images of another size than 299."""
    root = tmp_path_factory.mktemp("fid")
    torch.manual_seed(0)
    model = realistic_bn(create_model("inception_v3_fid"), 299)  # batch-norm statistics of real use
    weights = root / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), weights)
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0), ("b", 60)):
        (root / name).mkdir()
        for i in range(80):
            pixels = np.clip(rng.integers(0, 196, (64, 48, 3)) + shift, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return {"root": root, "weights": weights, "a": root / "a", "b": root / "b"}


def patch_download(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    state = torch.load(setup["weights"], weights_only=True)
    monkeypatch.setattr(pf_inception, "load_state_dict_from_url", lambda *_a, **_k: state)


def test_pool3_features_match_pytorch_fid(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    patch_download(setup, monkeypatch)
    theirs_net = pf_inception.InceptionV3([pf_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    files = sorted(str(p) for p in setup["a"].glob("*.png"))[:6]
    theirs = fid_score.get_activations(files, theirs_net, batch_size=6, dims=2048, device="cpu", num_workers=0)
    settings = ScoringSettings(convention="pytorch-fid", weights=str(setup["weights"]), batch_size=6, workers=0,
                               device="cpu", cache=False)  # fmt: skip
    ours = features([open_inputs(files)], settings, ["2048"], show_progress=False)[0]["2048"]  # type: ignore[index]
    # the same files in the same order; our network has batch norm folded into its convolutions and runs
    # channels_last, another path through the kernels: within 1e-5 of the features' scale (measured: 2e-6)
    assert np.abs(ours - theirs).max() < 1e-5 * np.abs(theirs).max()


def test_fid_agrees_with_pytorch_fid(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # 64-d features, so 80 images per side give full-rank covariances (pool3 would need > 2048 images)
    patch_download(setup, monkeypatch)
    theirs = float(fid_score.calculate_fid_given_paths([str(setup["a"]), str(setup["b"])], batch_size=20,
                                                       device="cpu", dims=64, num_workers=0))  # fmt: skip
    stats = setup["root"] / "a.npz"
    args = ["fid", str(setup["a"]), str(setup["b"]), "--weights", str(setup["weights"]), "--json", "--dims", "64"]
    assert main([*args, "--save-stats", str(stats)]) == 0
    ours = json.loads(capsys.readouterr().out)["fid"]
    assert ours > 0 and abs(ours - theirs) / theirs < 1e-3
    # the saved statistics give the same value without recomputing A
    assert main(["fid", str(stats), str(setup["b"]), "--weights", str(setup["weights"]), "--json", "--dims", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(ours, rel=1e-9)
    # `fidelity` in pytorch-fid's convention (its fast path: batch norm folded, channels_last, workers), from
    # images and from the saved statistics (B's features then come from the cache)
    fidelity = ["fidelity", "--fid", "--dims", "64", "--convention", "pytorch-fid", "--weights", str(setup["weights"]),
                "--json", "--device", "cpu"]  # fmt: skip
    for a in (setup["a"], stats):
        assert main([*fidelity, str(a), str(setup["b"])]) == 0
        value = json.loads(capsys.readouterr().out)["frechet_inception_distance"]
        assert abs(value - theirs) / theirs < 1e-3


def test_fid_bad_input(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fid", str(setup["a"]), str(setup["root"] / "missing"), "--weights", str(setup["weights"])]) == 2
    assert "missing does not exist (expected a folder" in capsys.readouterr().err
    # the default network is downloaded on first use; here the mirror is unreachable: one line naming the URL
    assert main(["fid", str(setup["a"]), str(setup["b"])]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot download http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth" in err and len(err.splitlines()) == 1
    )
    assert main(["fid", str(setup["root"] / "nope.npz"), str(setup["b"])]) == 2
    assert "does not exist" in capsys.readouterr().err
