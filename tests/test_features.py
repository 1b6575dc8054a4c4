"""`inception-v3 features`: pooled features with file names, in .npz or .safetensors, batched, with the
preprocessing of the weights; and the FID taps on request."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from helpers import num_threads, realistic_bn
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.data.crops import ViewSpec, single_crop_transform
from inception_v3.data.image_io import read_image
from inception_v3.models.inception import pooled_taps
from inception_v3.weights import save_pretrained


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("features")
    model = realistic_bn(create_model("inception_v3_79", width_multiplier=0.125, min_depth=8, num_classes=4), 79)
    preprocessing = {"resize": "shorter", "crop_fraction": 0.9, "interpolation": "bicubic"}
    save_pretrained(model, root / "weights", classes=list("abcd"), preprocessing=preprocessing)
    rng = np.random.default_rng(0)
    (root / "imgs" / "sub").mkdir(parents=True)
    for i in range(5):
        folder = root / "imgs" / ("sub" if i % 2 else "")
        Image.fromarray(rng.integers(0, 255, (50 + i, 70, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return {"root": root, "weights": root / "weights", "imgs": root / "imgs"}


def test_npz_with_names_taps_and_the_weights_preprocessing(setup: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = setup["root"] / "f.npz"
    args = ["features", str(setup["imgs"]), "--weights", str(setup["weights"]), "--output", str(out), "--taps",
            "64,192,768", "--batch-size", "3"]  # fmt: skip
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as data:
        files = list(data["files"])
        assert data["features"].shape == (5, 256) and data["taps_64"].shape == (5, 8)  # width 1/8: 2048/8, 64/8
        assert data["taps_192"].shape == (5, 24) and data["taps_768"].shape == (5, 96)
        features = torch.from_numpy(data["features"])
    assert sorted(Path(f).name for f in files) == [f"{i}.png" for i in range(5)]
    # the same numbers as the model's own pooled features, with the saved preprocessing (bicubic, shorter side)
    from inception_v3.weights import from_pretrained

    model = from_pretrained(setup["weights"]).eval()
    view = ViewSpec("shorter", 0.9, "bicubic")
    transform = single_crop_transform(79, view, 3, model.config.mean, model.config.std)
    x = torch.stack([transform(read_image(f)) for f in files])
    with torch.no_grad(), num_threads(2):  # batches of 3 and 2 on one thread there, one of 5 on two here
        want = model.forward_head(model.forward_features(x), pre_logits=True)
        assert torch.allclose(features, want, rtol=1e-4, atol=1e-4)  # another path: within a tolerance
        # the same batch on the same threads through the same modules: equal up to the pooling's summation order
        assert torch.allclose(pooled_taps(model, x, [2048])[2048], want, atol=1e-6)
    # an existing output is not replaced; the summary can be JSON
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 5


def test_safetensors_output(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["root"] / "f.safetensors"
    assert (
        main(["features", str(setup["imgs"] / "*.png"), "--weights", str(setup["weights"]), "--output", str(out)]) == 0
    )
    with safe_open(str(out), framework="pt") as f:
        assert list(f.keys()) == ["features"] and f.get_tensor("features").shape == (3, 256)
        meta = f.metadata()
    assert [Path(p).name for p in json.loads(meta["files"])] == ["0.png", "2.png", "4.png"]
    assert json.loads(meta["preprocessing"])["interpolation"] == "bicubic"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "x.csv"], "must end in .npz or .safetensors"),
        (["--output", "x.npz", "--taps", "65"], "invalid feature tap 65"),
        (["--output", "x.npz", "--taps", "a,b"], "expected comma-separated integers"),
        (["--output", "x.npz", "--batch-size", "0"], "must be >= 1"),
    ],
)
def test_bad_features_input(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            extra: list[str], message: str) -> None:  # fmt: skip
    extra = [str(tmp_path / e) if e.startswith("x.") else e for e in extra]
    try:
        code = main(["features", str(setup["imgs"]), "--weights", str(setup["weights"]), *extra])
    except SystemExit as exc:  # options argparse checks itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_weights_transforms_are_what_evaluate_feeds(setup: dict[str, Path], tmp_path: Path) -> None:
    """`inception_v3.weights.transforms(weights)` (the torchvision v2 pipeline a user preprocesses with) gives the
    exact input `evaluate` feeds the network for those weights' single crop (here shorter side, bicubic, 0.9)."""
    from inception_v3.evaluation.evaluate import run_evaluation
    from inception_v3.models.inception import Inception3
    from inception_v3.weights import transforms

    files = sorted((setup["imgs"]).rglob("*.png"), key=str)
    for i, f in enumerate(files):  # a labeled folder of the same images: classes a and b
        (tmp_path / "ab" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "ab" / "ab"[i % 2] / f.name).write_bytes(f.read_bytes())
    fed: list[torch.Tensor] = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: fed.append(args[0]) if isinstance(module, Inception3) else None
    )
    try:
        run_evaluation([str(setup["weights"])], str(tmp_path / "ab"), device="cpu", workers=0, show_progress=False)
    finally:
        hook.remove()
    order = sorted((tmp_path / "ab").rglob("*.png"), key=str)
    transform = transforms(setup["weights"])
    assert torch.equal(torch.cat(fed), torch.stack([transform(read_image(f)) for f in order]))
    with Image.open(order[0]) as im:  # a PIL image gives the same
        assert torch.equal(transform(im.convert("RGB")), fed[0][0])
    # named weights: their publisher's pipeline, without a download (the test mirror is unreachable)
    x = transforms("tf_in1k")(torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8))
    assert x.shape == (3, 299, 299) and x.dtype == torch.float32 and -1 <= x.min() < x.max() <= 1
