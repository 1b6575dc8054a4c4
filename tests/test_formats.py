"""One set of images in every format (an image folder, zip files, WebDataset shards, a Hugging Face dataset,
Fashion-MNIST's files, .npz sample batches): every command that reads images reads each format, and the
results are equal across formats, since each format gives the decoder the same pixels in the same order (the
same computation: exact equality)."""

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import cli_in_process
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist
from inception_v3.data.formats import open_source
from inception_v3.data.image_io import decode_rgb, decode_stored
from inception_v3.scoring.statistics import is_statistics, save_stats
from inception_v3.training.checkpoints import load_checkpoint
from inception_v3.weights import save_pretrained

pytestmark = pytest.mark.xdist_group("formats")  # its module fixture is built once

CLASSES = ("Bag", "Coat", "Dress")  # sorted, as a folder numbers them; Fashion-MNIST's labels 8, 4, 3
FORMATS = ("folder", "zip", "wds", "hf", "fashion-mnist", "npz")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (the MNIST format), gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """18 Fashion-MNIST test images of three classes (4 + 2 per class) as a folder, zips, shards, an HF dataset,
    Fashion-MNIST files and npz batches, all in the folder's order; a tiny FID network."""
    import datasets

    root = tmp_path_factory.mktemp("formats")
    images, labels = load_fashion_mnist(FASHION_MNIST_DIR, "test")
    rows: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "val": []}
    for k, name in enumerate(CLASSES):
        idx = (labels == FASHION_MNIST_CLASSES.index(name)).nonzero()[:, 0][:6].tolist()
        rows["train"] += [(k, images[i].numpy()) for i in idx[:4]]
        rows["val"] += [(k, images[i].numpy()) for i in idx[4:]]
    hf_splits = {}
    fm_files = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}  # fmt: skip
    for name in ("zip", "fm", "npz"):
        (root / name).mkdir()
    for split, items in rows.items():
        members = [(f"{CLASSES[k]}/{i:03d}.png", png(px)) for i, (k, px) in enumerate(items)]
        with zipfile.ZipFile(root / "zip" / f"{split}.zip", "w") as zf:
            for member, blob in members:
                (root / "folder" / split / member).parent.mkdir(parents=True, exist_ok=True)
                (root / "folder" / split / member).write_bytes(blob)
                zf.writestr(member, blob)
        hf_features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))})
        hf_splits["train" if split == "train" else "validation"] = datasets.Dataset.from_dict(
            {"image": [{"bytes": blob, "path": None} for _, blob in members], "label": [k for k, _ in items]},
            features=hf_features)  # fmt: skip
        pixels, ks = np.stack([px for _, px in items]), np.array([k for k, _ in items])
        write_idx(root / "fm" / fm_files[split][0], pixels)
        write_idx(root / "fm" / fm_files[split][1], np.array([FASHION_MNIST_CLASSES.index(CLASSES[k]) for k in ks]))
        np.savez(root / "npz" / f"{split}.npz", arr_0=pixels[..., None], arr_1=ks)
    datasets.DatasetDict(hf_splits).save_to_disk(str(root / "hf"))
    assert main(["shards", str(root / "folder"), str(root / "wds"), "--max-count", "5"]) == 0
    torch.manual_seed(0)
    save_pretrained(create_model("inception_v3_fid", width_multiplier=0.0625, min_depth=4).eval(), root / "fidnet")
    train_args = {
        "folder": ["--dataset", "imagefolder", "--data-dir", str(root / "folder")],
        "zip": ["--dataset", "zip", "--data-dir", str(root / "zip"), "--train-split", "train.zip", "--val-split",
                "val.zip"],
        "wds": ["--dataset", "wds", "--data-dir", str(root / "wds"), "--train-split", "train-{000000..000002}.tar",
                "--val-split", "val-{000000..000001}.tar"],
        "hf": ["--data-dir", f"hf:{root / 'hf'}"],
        "fashion-mnist": ["--data-dir", f"fashion-mnist:{root / 'fm'}", "--classes", ",".join(CLASSES)],
        "npz": ["--dataset", "npz", "--data-dir", str(root / "npz"), "--train-split", "train.npz", "--val-split",
                "val.npz"],
    }  # fmt: skip
    val = {"folder": str(root / "folder" / "val"), "zip": str(root / "zip" / "val.zip"),
           "wds": f"wds:{root / 'wds'}/val-{{000000..000001}}.tar", "hf": f"hf:{root / 'hf'}:validation",
           "fashion-mnist": f"fashion-mnist:{root / 'fm'}:test", "npz": str(root / "npz" / "val.npz")}  # fmt: skip
    return {"root": root, "train": train_args, "val": val, "fidnet": str(root / "fidnet")}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    done = cli_in_process(args, capsys)
    assert done.returncode == 0, (args, done.stderr[-2000:])
    return done.stdout


def test_every_reading_command_reads_every_format_to_the_same_result(
    data: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    common = ["train", "--recipe", "fashion-mnist", "--width-multiplier", "0.0625", "--min-depth", "4", "--batch-size",
              "4", "--workers", "0", "--amp", "none", "--epochs", "1", "--precise-bn-images", "8", "--gray", "rgb",
              "--out-dir", str(out)]  # fmt: skip
    weights = {}
    for fmt in FORMATS:  # train: bit-identical weights (class names aside: npz batches number their classes)
        run([*common, *data["train"][fmt], "--name", fmt], capsys)
        state = load_checkpoint(sorted((out / fmt / "checkpoints").glob("step-*.pt"))[-1])
        weights[fmt] = {**state["model"], **{f"ema.{k}": v for k, v in state["ema"]["module"].items()}}
        assert all(torch.equal(weights[fmt][k], v) for k, v in weights["folder"].items()), fmt
        assert json.loads((out / fmt / "config.json").read_text())["classes"] == (
            ["0", "1", "2"] if fmt == "npz" else list(CLASSES))  # fmt: skip
    ckpt = str(out / "folder" / "best.pt")
    results: dict[str, dict[str, object]] = {fmt: {} for fmt in FORMATS}
    for fmt in FORMATS:
        spec, cpu = data["val"][fmt], ["--device", "cpu", "--workers", "0"]
        own = str(out / fmt / "best.pt")  # evaluate matches classes by name: the npz run's are numbers
        metrics = json.loads(run(["evaluate", own, "--data-dir", spec, "--json", *cpu], capsys))
        results[fmt]["evaluate"] = [metrics[k] for k in ("n", "top1", "top5", "ece", "confusion")]
        top = json.loads(run(["predict", ckpt, spec, "--json", "--top-k", "3", "--device", "cpu"], capsys))
        results[fmt]["predict"] = [r["top"] for r in top]
        feats = tmp_path / f"features-{fmt}.npz"
        run(["features", spec, "--weights", ckpt, "--output", str(feats), *cpu], capsys)
        with np.load(feats) as f:  # labels by class name (an npz batch's class k is CLASSES[k] here)
            classes = list(CLASSES) if fmt == "npz" else f["classes"].tolist()
            results[fmt]["features"] = [f["features"].tolist(), [classes[y] for y in f["labels"]]]
        stats = tmp_path / f"stats-{fmt}.npz"
        run(["fid", spec, "--save-stats", str(stats), "--weights", data["fidnet"], "--dims", "64", *cpu], capsys)
        with np.load(stats) as s:
            results[fmt]["fid"] = [s["mu"].tolist(), s["sigma"].tolist()]
        metrics = ["--isc", "--isc-splits", "2", "--kid", "--kid-subsets", "3", "--kid-subset-size", "4", "--prc"]
        score = ["fidelity", spec, data["val"]["folder"], *metrics, "--dims", "64", "--weights", data["fidnet"]]
        results[fmt]["fidelity"] = json.loads(run([*score, "--json", *cpu], capsys))
        shards = tmp_path / f"shards-{fmt}"
        source, *options = shard_source(data, fmt)
        run(["shards", source, str(shards), *options], capsys)
        results[fmt]["shards"] = read_shards(shards, list(CLASSES) if fmt == "npz" else None)
    for fmt in FORMATS[1:]:
        for command, value in results[fmt].items():
            assert value == results["folder"][command], (fmt, command)
    assert results["folder"]["fidelity"]["inception_score_mean"] > 0  # a real comparison, not of empty results


def shard_source(data: dict, fmt: str) -> list[str]:
    """`shards`' source arguments for a format: its data dir and splits, as `train` names them."""
    args = data["train"][fmt]
    if fmt == "fashion-mnist":
        return [args[1]]
    if "--data-dir" in args:
        i = args.index("--data-dir")
        return [args[i + 1], *args[:i], *args[i + 2 :]]
    return args


def read_shards(folder: Path, classes: list[str] | None) -> list[object]:
    """The decoded pixels and class names of shards, in order (`classes`: instead of classes.txt)."""
    import webdataset

    classes = classes or (folder / "classes.txt").read_text().split("\n")
    out = []
    for split in ("train", "val"):
        for sample in webdataset.WebDataset(str(folder / f"{split}-{{000000..000009}}.tar"), shardshuffle=False,
                                            handler=webdataset.ignore_and_continue):  # fmt: skip
            pixels = np.asarray(Image.open(io.BytesIO(sample["png"])))
            out.append([pixels.tolist(), classes[int(sample["cls"])]])
    return out


def test_npz_sample_batches(tmp_path: Path) -> None:
    """The diffusion evaluators' format: arr_0 N x H x W x 3 uint8 (and arr_1 labels) reads as the same images in
    PNG files do; told apart from statistics files by their keys; bad batches are one line each."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 20, 24, 3), dtype=np.uint8)
    np.savez(tmp_path / "batch.npz", arr_0=pixels)
    (tmp_path / "pngs").mkdir()
    for i, px in enumerate(pixels):
        (tmp_path / "pngs" / f"{i}.png").write_bytes(png(px))
    batch, files = open_source(str(tmp_path / "batch.npz")), open_source(str(tmp_path / "pngs"))
    assert len(batch) == 5 and batch.labels is None
    for i in range(5):
        assert torch.equal(decode_stored(batch.stored(i)), decode_stored(files.stored(i)))
        assert np.array_equal(decode_rgb(batch.stored(i)), decode_rgb(files.stored(i)))
    save_stats(tmp_path / "stats.npz", np.zeros((3, 4)), np.zeros(4), np.eye(4), "pytorch-fid")
    assert is_statistics(tmp_path / "stats.npz") and not is_statistics(tmp_path / "batch.npz")
    np.savez(tmp_path / "float.npz", arr_0=pixels.astype(np.float32))
    np.savez(tmp_path / "labels.npz", arr_0=pixels, arr_1=np.arange(3))
    for name, message in (("stats.npz", "holds statistics (mu, sigma), not images"),
                          ("float.npz", "arr_0 must be N x H x W x 3 uint8"),
                          ("labels.npz", "arr_1 must hold one label per image (5)")):  # fmt: skip
        with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
            open_source(str(tmp_path / name))
