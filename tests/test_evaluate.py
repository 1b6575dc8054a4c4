"""Evaluation protocols, calibration, ensembles and prediction, on a tiny trained checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inception_v3.cli import main
from inception_v3.data.crops import ViewSpec, crop_views, single_crop_transform
from inception_v3.data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from inception_v3.data.image_io import read_image
from inception_v3.evaluation.metrics import (
    calibration_sums,
    calibration_table,
    classification_metrics,
    expected_calibration_error,
)
from inception_v3.training.loop import TrainResult

pytestmark = pytest.mark.xdist_group("trained_run")  # the suite's one training run, trained once (conftest)


@pytest.fixture(scope="module")
def checkpoint(trained_run: TrainResult) -> Path:
    return trained_run.run_dir / "best.pt"


def test_crop_protocol_view_counts() -> None:
    img = torch.randint(0, 255, (3, 120, 90), dtype=torch.uint8)
    assert crop_views(img, 79, "single").shape == (1, 3, 79, 79)
    assert crop_views(img, 79, "10").shape == (10, 3, 79, 79)
    views = crop_views(img, 79, "144")
    assert views.shape == (144, 3, 79, 79)
    assert torch.equal(views[72], views[0].flip(-1))  # the second half mirrors the first
    with pytest.raises(ValueError, match="valid values"):
        crop_views(img, 79, "12")


def test_ece_and_metrics_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 0, 1])
    sums = calibration_sums(probs, labels)
    ece, bins = expected_calibration_error(sums), calibration_table(sums)
    # bin (0.6, 0.667]: conf 0.6, acc 1; bin (0.667, 0.733]: conf 0.7, acc 1; bin (0.867, 0.933]: conf 0.9, acc 0.5
    assert ece == pytest.approx((0.4 * 1 + 0.3 * 1 + 0.4 * 2) / 4)
    assert sum(b["count"] for b in bins) == 4
    m = classification_metrics(probs, labels, ["a", "b"])
    assert m["top1"] == 0.75 and m["per_class"] == {"a": 1.0, "b": 0.5} and m["confusion"] == [[2, 0], [1, 1]]


def test_evaluate_cli_single_10_144_and_ensemble(checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    base = ["evaluate", str(checkpoint), "--dataset", "fashion-mnist", "--json", "--central-fraction", "1.0"]
    assert main([*base, "--limit", "40", "--out", str(tmp_path / "ev")]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["n"] == 40 and single["protocol"] == "single" and "averaged weights" in single["weights"][0]
    assert 0 <= single["ece"] <= 1 and len(single["per_class"]) == 5  # the run's classes 0-4
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"metrics.json", "confusion.png", "reliability.png"}
    assert main([*base, "--limit", "10", "--crops", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"] == "10"
    assert main([*base, "--limit", "2", "--crops", "144"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2
    assert main(["evaluate", str(checkpoint), str(checkpoint), "--dataset", "fashion-mnist", "--json",
                 "--limit", "10"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["members"] == 2
    # the same folder again is refused, nothing is overwritten
    assert main([*base, "--limit", "5", "--out", str(tmp_path / "ev")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_ensemble_members_must_share_classes(checkpoint: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from inception_v3 import create_model
    from inception_v3.weights import save_pretrained

    three = create_model("inception_v3_79", width_multiplier=0.0625, min_depth=4, num_classes=3, in_chans=1,
                         mean=(0.5,), std=(0.5,))  # fmt: skip
    save_pretrained(three, tmp_path / "three", classes=["a", "b", "c"])
    assert main(["evaluate", str(checkpoint), str(tmp_path / "three"), "--dataset", "fashion-mnist"]) == 2
    assert "share their classes" in capsys.readouterr().err


def test_predict_any_image_pillow_opens(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (24, 24), dtype=np.uint16)).save(tmp_path / "deep.png")
    assert main(["predict", str(checkpoint), str(tmp_path), "--json", "--top-k", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 5 and all(len(r["top"]) == 3 for r in results)
    probs = [t["probability"] for t in results[0]["top"]]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    # all 5 classes: a probability distribution, equal to the model's own softmax on that image
    assert main(["predict", str(checkpoint), str(tmp_path / "gray.png"), "--json", "--top-k", "5"]) == 0
    full = json.loads(capsys.readouterr().out)[0]["top"]
    assert sum(t["probability"] for t in full) == pytest.approx(1.0, abs=1e-5)
    from inception_v3.evaluation.members import load_members, predict_probs

    members, classes = load_members([str(checkpoint)])
    want = predict_probs(members, [read_image(tmp_path / "gray.png")], "single")[0]
    assert {t["label"]: t["probability"] for t in full} == pytest.approx(
        dict(zip(classes, want.tolist(), strict=True)), abs=1e-6
    )
    assert results[0]["top"][0]["label"] in {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"}
    assert main(["predict", str(checkpoint), str(tmp_path / "*.png")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["predict", str(checkpoint), str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt is not an image" in capsys.readouterr().err


def test_evaluate_an_image_folder(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    for name in ("Dress", "Coat"):
        (tmp_path / "val" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "val" / name / f"{i}.png")
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "val"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4
    (tmp_path / "val" / "Zebra").mkdir()
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "val" / "Zebra" / "0.png")
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "val")]) == 2
    assert "Zebra" in capsys.readouterr().err


def test_evaluate_fast_and_int8_modes_agree_with_fp32(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import inception_v3.evaluation.evaluate as evaluate
    from inception_v3.deploy.int8 import quantize_int8

    built = []  # the int8 model the command builds (with the real quantize_int8), checked below against fp32

    def keep(model: torch.nn.Module, calibration: list[torch.Tensor]) -> torch.nn.Module:
        built.append((model, quantize_int8(model, calibration), calibration))  # (it quantizes a copy)
        return built[-1][1]

    monkeypatch.setattr(evaluate, "quantize_int8", keep)
    base = ["evaluate", str(checkpoint), "--dataset", "fashion-mnist", "--json", "--central-fraction", "1.0",
            "--limit", "64"]  # fmt: skip
    results = {}
    for mode in ("fp32", "fast", "int8"):
        assert main([*base, "--mode", mode]) == 0
        results[mode] = json.loads(capsys.readouterr().out)
        assert results[mode]["mode"] == mode and results[mode]["n"] == 64
    for mode in ("fast", "int8"):  # a tiny, barely trained model: allow a few flipped predictions
        assert abs(results[mode]["top1"] - results["fp32"]["top1"]) <= 0.1
    # the int8 model itself, on 64 real test images of the run's classes (cropped as above: --central-fraction
    # 1.0): close to the fp32 model's outputs, its input settings kept
    ((fp32, int8, calibration),) = built
    assert sum(len(x) for x in calibration) == 256  # Fashion-MNIST training images
    images, labels = load_fashion_mnist(FASHION_MNIST_DIR, "test")
    cfg = fp32.config
    crop = single_crop_transform(cfg.receptive_field, ViewSpec(crop_fraction=1.0), cfg.in_chans, cfg.mean, cfg.std)
    x = torch.stack([crop(im[None]) for im in images[labels < 5][:64]])
    with torch.no_grad():
        ref, out = fp32.eval()(x), int8(x)
    assert out.shape == ref.shape and int8.config == fp32.config
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.95
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.8
    # int8 on a folder needs calibration images, and says so in one line
    (tmp_path / "val" / "Coat").mkdir(parents=True)
    Image.new("L", (28, 28)).save(tmp_path / "val" / "Coat" / "0.png")
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "val"), "--mode", "int8"]) == 2
    assert "--calibration" in capsys.readouterr().err


def test_streamed_ece_equals_the_ece_of_the_whole_set() -> None:
    from inception_v3.evaluation.metrics import evaluate
    from inception_v3.utils.precision import Compute

    x, y = torch.randn(200, 5), torch.randint(0, 5, (200,))
    batches = [(x[i : i + 50], y[i : i + 50], 0) for i in range(0, 200, 50)]
    result = evaluate(torch.nn.Identity(), batches, Compute(torch.device("cpu")))
    assert result["ece"] == pytest.approx(expected_calibration_error(calibration_sums(x.softmax(1), y)), abs=1e-9)
