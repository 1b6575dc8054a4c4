"""Data at scale: WebDataset shards (written by `inception-v3 shards` with webdataset's ShardWriter, read
back by webdataset itself) and Hugging Face datasets (`save_to_disk`) train to the same weights as the
image folder they hold; bad shards and datasets are one line each."""

import contextlib
import functools
import http.server
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import CLI, cli_in_process
from inception_v3.cli import main
from inception_v3.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.xdist_group("shards")  # its module fixture is built once

CLASSES = ("boot", "coat", "dress")
TINY = ["train", "--recipe", "fashion-mnist", "--width-multiplier", "0.0625", "--min-depth", "4", "--batch-size",
        "8", "--workers", "0", "--amp", "none", "--epochs", "2",
        "--precise-bn-images", "16"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An image folder (PNG and JPEG, gray and RGB, of several sizes), its shards and an HF dataset of it."""
    import datasets

    root = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(0)
    files: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for split, per_class in (("train", 16), ("val", 4)):
        for label, name in enumerate(CLASSES):
            folder = root / "folder" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                shape = (28 + i % 3, 30) if i % 2 else (32, 28 + i % 4, 3)
                pixels = np.clip(rng.normal(60 + 60 * label, 30, shape), 0, 255).astype(np.uint8)
                path = folder / f"{i:03d}.{'jpg' if i % 4 == 0 else 'png'}"
                Image.fromarray(pixels).save(path, quality=92)
                files[split].append((str(path), label))
    assert main(["shards", str(root / "folder"), str(root / "shards"), "--max-count", "20"]) == 0
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))})
    splits = {}
    for split, name in (("train", "train"), ("val", "validation")):
        rows = sorted(files[split], key=lambda r: (r[1], r[0]))  # the folder's order: class, then file name
        splits[name] = datasets.Dataset.from_dict({"image": [p for p, _ in rows], "label": [y for _, y in rows]},
                                                  features=features)  # fmt: skip
    datasets.DatasetDict(splits).save_to_disk(str(root / "hf"))
    return {"root": root, "folder": root / "folder", "shards": root / "shards", "hf": root / "hf"}


ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}  # one thread, as cli_in_process
WDS = ["--dataset", "wds", "--train-split", "train-{000000..000002}.tar", "--val-split", "val-000000.tar"]


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `folder`; yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(sorted((run / "checkpoints").glob("step-*.pt"))[-1])
    return {**state["model"], **{f"ema.{k}": v for k, v in state["ema"]["module"].items()}}


def test_shards_are_webdataset_shards(data: dict[str, Path]) -> None:
    import webdataset

    names = sorted(p.name for p in data["shards"].glob("*.tar"))
    assert names == ["train-000000.tar", "train-000001.tar", "train-000002.tar", "val-000000.tar"]
    samples = list(webdataset.WebDataset(str(data["shards"] / "train-{000000..000002}.tar"), shardshuffle=False))
    assert len(samples) == 48 and all(("png" in s or "jpg" in s) and "cls" in s for s in samples)
    assert (data["shards"] / "classes.txt").read_text().split() == list(CLASSES)


def test_folder_shards_and_hf_dataset_train_to_the_same_weights(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shard-fed run is also killed with SIGKILL after its second checkpoint and resumed; evaluate reads
    the three formats to the same numbers."""
    out = ["--out-dir", str(tmp_path)]
    for dataset, name in (("imagefolder", "folder"), ("hf", "hf")):  # one thread, as the shard-fed process
        done = cli_in_process([*TINY, "--dataset", dataset, "--data-dir", str(data[name]), *out, "--name", name])
        assert done.returncode == 0
    shard_args = [*TINY, *WDS, "--data-dir", str(data["shards"]), *out, "--name", "wds", "--checkpoint-every", "2"]
    proc = subprocess.Popen([*CLI, *shard_args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "wds" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(list(ckpts.glob("step-*.pt"))) < 2:
        time.sleep(0.02)
    proc.kill(), proc.wait()
    assert 0 < max(int(p.stem.split("-")[1]) for p in ckpts.glob("step-*.pt")) < 12  # it died mid-run
    resumed = cli_in_process([*shard_args, "--resume"], capsys)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-2000:]
    runs = {name: weights(tmp_path / name) for name in ("folder", "wds", "hf")}
    # evaluate reads the three formats too: the same images, the same numbers
    best = str(tmp_path / "folder" / "best.pt")
    capsys.readouterr()  # the training runs' lines
    results = []
    with served(data["shards"]) as url:  # and shards by URL, fetched through webdataset's openers (curl)
        for args in (["--data", str(data["folder"] / "val")], ["--dataset", "wds", "--data", str(data["shards"]),
                     "--split", "val-000000.tar"], ["--dataset", "hf", "--data", str(data["hf"])],
                     ["--dataset", "wds", "--data", url, "--split", "val-000000.tar"]):  # fmt: skip
            assert main(["evaluate", best, *args, "--json", "--device", "cpu"]) == 0
            results.append(json.loads(capsys.readouterr().out))
    assert results[0]["n"] == 12 and all(r["per_class"] == results[0]["per_class"] for r in results)
    assert all(r["top1"] == results[0]["top1"] and r["ece"] == results[0]["ece"] for r in results)
    # features: the same arrays from the files, the shards and the HF split; labels and classes with the last two
    feats = []
    for args in ([str(data["folder"] / "val")], ["--dataset", "wds", str(data["shards"]), "--split", "val-000000.tar"],
                 ["--dataset", "hf", str(data["hf"])]):  # fmt: skip
        out_file = tmp_path / f"features-{len(feats)}.npz"
        assert main(["features", *args, "--weights", best, "--output", str(out_file), "--device", "cpu"]) == 0
        feats.append(np.load(out_file))
    assert feats[0]["features"].shape[0] == 12  # a folder of class folders is labeled too
    for f in feats:
        assert (
            np.array_equal(f["features"], feats[0]["features"]) and f["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
        )
        assert f["classes"].tolist() == list(CLASSES)
    for name in ("wds", "hf"):
        different = [k for k in runs["folder"] if not torch.equal(runs["folder"][k], runs[name][k])]
        assert not different, f"{name}: {len(different)} tensors differ from the image folder's run"
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["classes"] == list(CLASSES) and config["steps_per_epoch"] == 6


def test_shards_of_an_hf_dataset_hold_its_images(data: dict[str, Path], tmp_path: Path) -> None:
    """`shards hf:...` writes what `shards FOLDER` writes for the same images: the same bytes and labels."""
    import webdataset

    assert main(["shards", f"hf:{data['hf']}", str(tmp_path / "from-hf"), "--max-count", "20"]) == 0
    assert (tmp_path / "from-hf" / "classes.txt").read_text().split() == list(CLASSES)
    for split in ("train-{000000..000002}.tar", "val-000000.tar"):
        a, b = (
            list(webdataset.WebDataset(str(d / split), shardshuffle=False))
            for d in (data["shards"], tmp_path / "from-hf")
        )
        strip = [{k: v for k, v in s.items() if not k.startswith("__")} for s in a]
        assert len(a) == len(b) and strip == [{k: v for k, v in s.items() if not k.startswith("__")} for s in b]


def test_reproduce_trains_and_evaluates_from_shards(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "rp"
    args = ["reproduce", "crops", "--budget", "smoke", "--seeds", "1", "--out-dir", str(out), "--dataset", "wds",
            "--data-dir", str(data["shards"]), "--train-split", "train-{000000..000002}.tar", "--val-split",
            "val-000000.tar"]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(p.read_text()) for p in (out / "records" / "smoke").glob("*.json")]
    trained = [r for r in records if r["kind"] == "train"]
    assert trained and all(r["train"]["dataset"] == "wds" and r["steps"] > 0 for r in trained)  # table3's ladder
    crops = [r for r in records if r["kind"] == "crops"]
    assert len(crops) == 4 and all(r["final"]["ema"]["n"] == 8 for r in crops)  # the budget's 8 shard images


def test_an_undecodable_member_is_named_by_shard_and_key(data: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import webdataset

    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("val-000000.tar", "classes.txt"):
        (shards / name).write_bytes((data["shards"] / name).read_bytes())
    good = list(webdataset.WebDataset(str(data["shards"] / "train-000000.tar"), shardshuffle=False))
    with webdataset.TarWriter(str(shards / "train-000000.tar")) as sink:
        for i, sample in enumerate(good):
            sample = {k: v for k, v in sample.items() if k in ("__key__", "png", "jpg", "cls")}
            if i == 3:
                sample = {"__key__": sample["__key__"], "jpg": b"not a jpeg", "cls": sample["cls"]}
            sink.write(sample)
    args = [*TINY, "--dataset", "wds", "--data-dir", str(shards), "--train-split", "train-000000.tar", "--val-split",
            "val-000000.tar", "--out-dir", str(tmp_path / "runs"), "--epochs", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train-000000.tar:train_00000003" in err and "--skip-bad-images" in err
    assert main([*args, "--skip-bad-images", "--name", "skip"]) == 0
    assert json.loads((tmp_path / "runs" / "skip" / "final.json").read_text())["skipped_bad_images"] == 1


def test_bad_shards_and_datasets_one_line_each(data: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bad = tmp_path / "bad"
    bad.mkdir()
    for shard in data["shards"].glob("*.tar"):
        (bad / shard.name).write_bytes(shard.read_bytes())
    whole = (bad / "train-000001.tar").read_bytes()
    (bad / "cut-000000.tar").write_bytes(whole[: len(whole) // 2 + 100])  # truncated
    with tarfile.open(bad / "nolabel-000000.tar", "w") as tar:  # an image without a label
        tar.add(next(data["folder"].rglob("*.png")), arcname="x_00000001.png")
    common = [*TINY, "--out-dir", str(tmp_path / "runs")]
    shards = ["--dataset", "wds", "--data-dir", str(bad), "--val-split", "val-000000.tar"]
    cases = [
        ([*shards, "--train-split", "train-{000000..000005}.tar"], "is missing (3 of the 6 shards"),
        ([*shards, "--train-split", "other-{000000..000001}.tar"], "matches no shard"),
        ([*shards, "--train-split", "cut-000000.tar"], "is truncated or not a tar file"),
        ([*shards, "--train-split", "nolabel-000000.tar"], "has no label"),
        (["--dataset", "wds", "--data-dir", str(bad)], "name them with --train-split and --val-split"),
        (["--dataset", "hf", "--data-dir", str(data["hf"]), "--label-column", "y"], "has no column 'y'"),
        (["--dataset", "hf", "--data-dir", str(data["hf"]), "--val-split", "test"], "has no split 'test'"),
        (["--dataset", "hf", "--data-dir", str(tmp_path / "nowhere-dataset")], "cannot load the dataset"),
    ]
    with served(bad) as url:
        cases.append(([*shards[:2], "--data-dir", url, "--train-split", "train-{000000..000004}.tar", *shards[4:]],
                      "cannot fetch shard " + url + "/train-000003.tar (4 of 5)"))  # fmt: skip
        for args, message in cases:
            assert main([*common, *args]) == 2, args
            err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
            err = [line for line in err if not line.startswith("fetching")]  # the progress of the shards fetched
            assert len(err) == 1 and message in err[-1], (args, err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_fidelity_reads_shards_and_hf_datasets(data: dict[str, Path], tmp_path: Path) -> None:
    """The scores of the same images as a folder, as shards and as an HF dataset split are equal."""
    from helpers import realistic_bn
    from inception_v3 import create_model
    from inception_v3.scoring import calculate_metrics

    torch.manual_seed(0)
    net = realistic_bn(create_model("inception_v3_fid"), 299)
    with torch.no_grad():
        net.fc.weight.mul_(0.01)
    torch.save(net.state_dict(), tmp_path / "fid.pth")
    common = {"isc": True, "isc_splits": 3, "weights": str(tmp_path / "fid.pth"), "workers": 0, "device": "cpu",
              "show_progress": False, "cache": False}  # fmt: skip
    inputs = (str(data["folder"] / "val"), f"wds:{data['shards']}/val-000000.tar", f"hf:{data['hf']}:validation")
    scores = [calculate_metrics(x, **common) for x in inputs]
    assert scores[0]["inception_score_mean"] > 1 and scores[1] == scores[0] and scores[2] == scores[0]
    # `fid` (pytorch-fid's numbers) reads them too: the same statistics
    stats = []
    for x in (*inputs[:2], f"hf:{data['hf']}"):  # the default split: validation
        stats.append(tmp_path / f"stats-{len(stats)}.npz")
        assert main(["fid", x, "--save-stats", str(stats[-1]), "--weights", str(tmp_path / "fid.pth"), "--dims", "64",
                     "--device", "cpu"]) == 0  # fmt: skip
    loaded = [np.load(p) for p in stats]
    assert all(np.array_equal(s["mu"], loaded[0]["mu"]) and np.array_equal(s["sigma"], loaded[0]["sigma"])
               for s in loaded[1:])  # fmt: skip
