"""Fashion-MNIST from the files of Debian's `dataset-fashion-mnist` package (IDX format, gzipped), as a source:
`fashion-mnist:SPLIT` (Debian's folder) or `fashion-mnist:DIR:SPLIT`, SPLIT `train` or `test` (default: test)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .sources import COLUMNS, ArrayImages

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_APT_HINT = "install it with 'sudo apt-get install -y dataset-fashion-mnist' or name a folder: fashion-mnist:DIR:SPLIT"


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}; the file is damaged, reinstall it") from None
    ndim = data[3] if len(data) > 4 else 0
    if len(data) < 4 + 4 * ndim or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {body.size}")
    return body.reshape(shape)


def load_fashion_mnist(data_dir: str | os.PathLike[str], split: str) -> tuple[Tensor, Tensor]:
    """Images (N x 28 x 28 uint8) and labels (N,) of the `train` or `test` split."""
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"Fashion-MNIST directory {root} does not exist; {_APT_HINT}")
    paths = [next((p for p in (root / n, root / n.removesuffix(".gz")) if p.exists()), root / n) for n in _FILES[split]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UserError(f"{missing[0]} is missing; {_APT_HINT}")
    images, labels = map(_read_idx, paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"Fashion-MNIST files in {root} do not match: {images.shape} images, {labels.shape} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def open_fashion_mnist(spec: str, columns: tuple[str, str] = COLUMNS) -> ArrayImages:
    """`SPLIT`, `DIR:SPLIT` or `DIR` (the test split; no split at all: Debian's test split) as a labeled source of
    28 x 28 gray images."""
    root, _, split = spec.rpartition(":") if ":" in spec or spec in _FILES else (spec, "", "test")
    if split not in _FILES:
        raise UserError(
            f"unknown Fashion-MNIST split {split!r} in fashion-mnist:{spec}; use fashion-mnist:train or "
            f"fashion-mnist:test"
        )
    name = f"fashion-mnist:{root}:{split}" if root else f"fashion-mnist:{split}"
    root = root or FASHION_MNIST_DIR
    images, labels = load_fashion_mnist(root, split)
    stats = ":".join(f"{st.st_size}:{st.st_mtime_ns}" for st in (p.stat() for p in sorted(Path(root).glob("*ubyte*"))))
    fingerprint = f"fashion-mnist:{Path(root).resolve()}:{split}:{stats}"
    return ArrayImages(images.numpy(), name, labels.numpy(), list(FASHION_MNIST_CLASSES), fingerprint)
