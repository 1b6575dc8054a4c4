"""Bad input to `inception-v3 train`: one clear line, exit code 2, nothing overwritten."""

import hashlib
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from inception_v3.cli import main

FAST = ["train", "--recipe", "fashion-mnist", "--width-multiplier", "0.0625", "--min-depth", "4", "--workers", "0",
        "--amp", "none", "--batch-size", "8", "--epochs", "1", "--precise-bn-images", "16",
        "--name", "run"]  # fmt: skip


def make_image_folder(root: Path, classes: list[str], per_class: int = 8) -> None:
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                write_png(torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8, generator=g),
                          str(root / split / c / f"{i}.png"))  # fmt: skip


def tree_digest(root: Path) -> dict[str, str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_missing_fashion_mnist_dir_names_the_apt_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run([*FAST, "--data-dir", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path)], capsys)
    assert code == 2 and "apt-get install -y dataset-fashion-mnist" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_empty_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "val").mkdir()
    code, err = run([*FAST, "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"),
                     "--out-dir", str(tmp_path / "runs")], capsys)  # fmt: skip
    assert code == 2 and "data" in err and "Traceback" not in err


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_is_one_line_at_any_workers_or_skipped_and_counted_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    data = tmp_path / "data"
    make_image_folder(data, ["cat", "dog"])
    bad = data / "train" / "cat" / "3.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    args = [*FAST, "--dataset", "imagefolder", "--data-dir", str(data), "--workers", str(workers),
            "--out-dir", str(tmp_path / "runs")]  # fmt: skip
    code, err = run(args, capsys)
    lines = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(lines) == 1 and "3.png" in err and "--skip-bad-images" in err, err
    assert "Traceback" not in err and "worker" not in err.lower()
    assert not (tmp_path / "runs" / "run").exists()  # failed before its first checkpoint: no folder left
    code, err = run([*args, "--skip-bad-images", "--epochs", "2"], capsys)  # no --overwrite needed
    assert code == 0, err
    final = (tmp_path / "runs" / "run" / "final.json").read_text()
    assert '"skipped_bad_images": 1' in final  # seen in both epochs, counted once


def test_existing_run_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "metrics.jsonl").write_text('{"kind": "step"}\n')
    before = tree_digest(tmp_path / "runs")
    code, err = run([*FAST, "--out-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert tree_digest(tmp_path / "runs") == before
    code, err = run([*FAST, "--out-dir", str(tmp_path / "runs"), "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err
    assert tree_digest(tmp_path / "runs") == before


def test_class_count_must_match_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make_image_folder(data, ["a", "b", "c"], per_class=4)
    base = [*FAST, "--dataset", "imagefolder", "--out-dir", str(tmp_path / "runs"), "--checkpoint-every", "1"]
    assert run([*base, "--data-dir", str(data)], capsys)[0] == 0
    before = tree_digest(tmp_path / "runs")
    other = tmp_path / "other"
    make_image_folder(other, ["a", "b", "c", "d"], per_class=4)
    code, err = run([*base, "--data-dir", str(other), "--resume"], capsys)
    assert code == 2 and "3 classes" in err and "4" in err
    assert tree_digest(tmp_path / "runs") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "nope"], "valid recipes"),
        (["--optimizer", "adam"], "valid values: rmsprop, sgd"),
        (["--amp", "fp16", "--device", "cpu"], "needs a CUDA device"),
        (["--preset", "inception_v9"], "valid values: inception_v3, inception_v3_151"),
    ],
)
def test_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, err = run([*FAST, "--out-dir", str(tmp_path), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err
