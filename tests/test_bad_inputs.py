"""Bad command lines across every subcommand: each one exits 2 with one line that says what is wrong, and
no file changes (damaged and foreign files included)."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.data.fashion_mnist import FASHION_MNIST_CLASSES
from inception_v3.weights import save_pretrained

TRAIN = ["train", "--recipe", "fashion-mnist", "--width-multiplier", "0.0625", "--min-depth", "4", "--workers", "0",
         "--train-subset", "64", "--epochs", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    small = {"width_multiplier": 0.0625, "min_depth": 4, "in_chans": 1, "mean": (0.5,), "std": (0.5,)}
    save_pretrained(create_model("inception_v3_79", num_classes=10, **small), root / "fm", FASHION_MNIST_CLASSES)
    save_pretrained(create_model("inception_v3_79", num_classes=5, **small), root / "five", list("abcde"))
    rng = np.random.default_rng(0)
    (root / "random.pt").write_bytes(rng.bytes(5000))
    (root / "zero.pt").write_bytes(b"")
    (root / "random.h5").write_bytes(rng.bytes(3000))
    (root / "random.npz").write_bytes(rng.bytes(3000))
    data = (root / "fm" / "model.safetensors").read_bytes()
    (root / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (root / "garbage").mkdir()
    (root / "garbage" / "config.json").write_text("{not json")
    (root / "garbage" / "model.safetensors").write_bytes(data)
    (root / "imgs").mkdir()
    Image.new("L", (28, 28), 128).save(root / "imgs" / "a.png")
    for cls in ("cat", "dog"):
        (root / "other" / cls).mkdir(parents=True)
        Image.new("L", (28, 28), 50).save(root / "other" / cls / "0.png")
    return root


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


CASES = [
    (["predict", "{d}/random.pt", "{d}/imgs"], "cannot read"),
    (["predict", "{d}/zero.pt", "{d}/imgs"], "cannot read"),
    (["evaluate", "{d}/cut.safetensors", "--dataset", "fashion-mnist"], "cannot read"),
    (["export", "{d}/garbage", "--format", "onnx", "--output", "{o}/m.onnx"], "not valid JSON"),
    (["convert", "{d}/random.h5", "{o}/converted"], "HDF5"),
    (["fid", "{d}/random.npz", "{d}/imgs"], "neither statistics (mu, sigma) nor a sample batch"),
    (["predict", "{d}/fm", "{d}/imgs", "--top-k", "0"], "--top-k: must be >= 1"),
    (["evaluate", "{d}/fm", "--dataset", "fashion-mnist", "--limit", "0"], "--limit: must be >= 1"),
    (["evaluate", "{d}/fm", "--dataset", "fashion-mnist", "--central-fraction", "0"], "must be > 0 and <= 1"),
    (["evaluate", "{d}/five", "--dataset", "fashion-mnist"], "has classes the weights do not know: Ankle boot"),
    (["evaluate", "{d}/fm", "--data", "{d}/other"], "classes the weights do not know: cat, dog"),
    ([*TRAIN, "--workers", "-1"], "invalid --workers -1: must be >= 0"),
    ([*TRAIN, "--keep-last", "0"], "invalid --keep-last 0: must be >= 1"),
    ([*TRAIN, "--checkpoint-every", "-5"], "invalid --checkpoint-every -5"),
    ([*TRAIN, "--batch-size", "0"], "invalid --batch-size 0"),
    ([*TRAIN, "--epochs", "0"], "invalid --epochs 0.0: must be > 0"),
    ([*TRAIN, "--lr", "-1"], "invalid --lr -1.0: must be > 0"),
    ([*TRAIN, "--name", "../escape"], "a plain folder name"),
    ([*TRAIN, "--resume", "bogus"], "argument --resume: invalid choice"),
    ([*TRAIN, "--classes", "3,3"], "at least 2 different classes"),
    ([*TRAIN, "--crop-area-min", "2"], "invalid --crop-area-min 2.0"),
    ([*TRAIN, "--label-smoothing", "1"], "invalid --label-smoothing 1.0"),
    ([*TRAIN, "--amp", "fp8"], "valid values: auto, none, bf16, fp16"),
    ([*TRAIN, "--init-from", "{d}/random.pt"], "cannot read"),
    ([*TRAIN, "--receptive-field", "100"], "valid values: 299, 151, 79"),
    ([*TRAIN, "--lr", "abc"], "argument --lr: invalid float value"),
    (["features", "{d}/imgs", "--weights", "{d}/fm", "--output", "{o}/x.txt"], "must end in .npz or .safetensors"),
    (["features", "{d}/imgs", "--weights", "{d}/fm", "--output", "{o}/f.npz", "--batch-size", "0"], "must be >= 1"),
    (["summary", "--resolution", "10"], "below this model's minimum input 75"),
    (["summary", "--preset", "nope"], "valid presets"),
    (["reproduce", "table2", "--seeds", "0"], "--seeds: must be >= 1"),
    (["reproduce", "table9", "--out-dir", "{o}/rp"], "unknown experiment 'table9'"),
    (["export", "{d}/fm", "--format", "tflite", "--output", "{o}/m.tflite"], "invalid choice: 'tflite'"),
    (["convert", "{d}/nowhere.pth", "{o}/converted"], "does not exist"),
    (["weights", "--bogus"], "unrecognized arguments: --bogus"),
    (["predict", "IMAGENET1K_V7", "{d}/imgs"], "unknown weights 'IMAGENET1K_V7'"),
    (["fid", "{d}/imgs", "{d}/missing"], "missing does not exist (expected a folder, .zip, .npz sample batch"),
    ([], "the following arguments are required: COMMAND"),
    # --device: a GPU that is not there (none on a CPU machine; no 100th on a GPU one) or no device at all
    (["predict", "{d}/fm", "{d}/imgs", "--device", "cuda:99"], "--device cuda:99"),
    (["evaluate", "{d}/fm", "--dataset", "fashion-mnist", "--device", "cuda:99"], "--device cuda:99"),
    (
        ["features", "{d}/imgs", "--weights", "{d}/fm", "--output", "{o}/f.npz", "--device", "cuda:99"],
        "--device cuda:99",
    ),
    (["fid", "{d}/imgs", "{d}/other", "--weights", "{d}/fm", "--device", "cuda:99"], "--device cuda:99"),
    (["evaluate", "{d}/fm", "--dataset", "fashion-mnist", "--device", "tpu"], "invalid --device 'tpu'"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[f"{i:02d}-{c[0][0] if c[0] else 'none'}" for i, c in
                                                          enumerate(CASES)])  # fmt: skip
def test_bad_command_line(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                          message: str, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = [a.format(d=files, o=tmp_path) for a in args]
    if argv and argv[0] == "train":
        argv += ["--out-dir", str(tmp_path / "runs")]
    before, before_out = digest(files), digest(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, err)
    assert message in lines[0], (argv, lines[0])
    assert digest(files) == before and digest(tmp_path) == before_out, "a file was written or changed"
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_enough_bad_inputs_across_the_commands() -> None:
    commands = {c[0][0] for c in CASES if c[0]}
    assert len(CASES) >= 25 and commands >= {"train", "predict", "evaluate", "export", "convert", "fid", "features",
                                             "summary", "reproduce", "weights"}  # fmt: skip
