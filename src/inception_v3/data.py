"""Data: Fashion-MNIST from Debian's files, ImageFolder trees, and the Inception preprocessing.

Preprocessing follows TF-slim (facts.md, Section 8): train = distorted bounding-box crop
(area range, aspect 3/4..4/3), resize, horizontal flip, color distortion; eval = central crop of
0.875, resize. Normalization uses the mean/std stored in the model config.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .errors import UserError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_APT_HINT = "install it with 'sudo apt-get install -y dataset-fashion-mnist' or pass --data-dir"


@dataclass(frozen=True)
class Preprocessing:
    """The Inception preprocessing settings (all overridable from the command line)."""

    size: int = 299
    crop_area: tuple[float, float] = (0.05, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_distortion: float = 0.5  # 0 turns it off; brightness 32/255 x 2s, contrast/saturation s, hue s/2.5
    eval_crop: float = 0.875
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)


class CentralCrop(v2.Transform):
    """TF's central_crop: keep the central `fraction` of each side."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"central crop fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        h, w = v2.query_size([inpt])
        return TF.center_crop(inpt, [max(1, round(h * self.fraction)), max(1, round(w * self.fraction))])


def _finish(p: Preprocessing, channels: int) -> list[v2.Transform]:
    steps: list[v2.Transform] = []
    if channels == 3:
        steps.append(v2.RGB())
    elif channels == 1:
        steps.append(v2.Grayscale(1))
    return [*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(p.mean), list(p.std))]


def train_transform(p: Preprocessing, channels: int) -> v2.Compose:
    """Distorted crop + resize + flip + color distortion, then scale and normalize."""
    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(p.size, scale=p.crop_area, ratio=p.crop_aspect, antialias=True),
    ]
    if p.flip:
        steps.append(v2.RandomHorizontalFlip())
    if p.color_distortion > 0:
        s = p.color_distortion
        jitter = v2.ColorJitter(brightness=min(1.0, 2 * s * 32 / 255), contrast=s, saturation=s, hue=min(0.5, s / 2.5))
        steps.append(jitter)
    return v2.Compose(steps + _finish(p, channels))


def eval_transform(p: Preprocessing, channels: int) -> v2.Compose:
    """Central crop of `eval_crop`, resize, scale and normalize."""
    return v2.Compose([CentralCrop(p.eval_crop), v2.Resize((p.size, p.size), antialias=True), *_finish(p, channels)])


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
    paths = []
    for name in _FASHION_FILES[split]:
        path = root / name
        if not path.exists() and (root / name.removesuffix(".gz")).exists():
            path = root / name.removesuffix(".gz")
        if not path.exists():
            raise UserError(f"{path} is missing; {_APT_HINT}")
        paths.append(path)
    images, labels = (_read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"Fashion-MNIST files in {root} do not match: {images.shape} images, {labels.shape} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


class TensorImages(Dataset):
    """In-memory gray images (N x H x W uint8) with labels, transformed one sample at a time."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.images[i].unsqueeze(0)), int(self.labels[i])


def decode_file(path: str) -> Tensor:
    """An image file decoded with torchvision.io (uint8 C x H x W)."""
    with open(path, "rb") as f:
        data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    return decode_image(data, mode=ImageReadMode.UNCHANGED)


class ImageFolderDataset(datasets.ImageFolder):
    """`ImageFolder` decoding with torchvision.io; a corrupt image is an error naming the file,
    or, with `skip_bad`, a sample returned as None (dropped and counted by `collate`)."""

    def __init__(self, root: str, transform: Callable[[Tensor], Tensor], skip_bad: bool = False) -> None:
        if not Path(root).is_dir():
            raise UserError(f"image directory {root} does not exist")
        try:
            super().__init__(root, transform=transform, loader=decode_file, is_valid_file=is_image_file)
        except (FileNotFoundError, RuntimeError) as exc:
            raise UserError(f"{root}: {exc}") from None
        self.skip_bad = skip_bad

    def __getitem__(self, i: int) -> Any:
        path, label = self.samples[i]
        try:
            image = self.loader(path)
        except (RuntimeError, OSError, ValueError) as exc:
            if self.skip_bad:
                return None
            raise UserError(f"cannot decode image {path}: {exc}; fix or remove it, or pass --skip-bad-images") from None
        return self.transform(image), label


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def collate(batch: list[Any]) -> tuple[Tensor, Tensor, int]:
    """Stack the good samples; the third element counts the ones skipped as unreadable."""
    good = [b for b in batch if b is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(batch)
    images = torch.stack([b[0] for b in good])
    labels = torch.tensor([b[1] for b in good], dtype=torch.long)
    return images, labels, len(batch) - len(good)


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    classes: list[str]


def build_datasets(dataset: str, data_dir: str | None, p: Preprocessing, channels: int, skip_bad: bool = False,
                   train_subset: int | None = None, val_subset: int | None = None) -> Splits:  # fmt: skip
    """Train and validation sets for `fashion-mnist` or an `imagefolder` tree (data_dir/train, data_dir/val)."""
    if dataset == "fashion-mnist":
        root = data_dir or FASHION_MNIST_DIR
        train = TensorImages(*load_fashion_mnist(root, "train"), train_transform(p, channels))
        val = TensorImages(*load_fashion_mnist(root, "test"), eval_transform(p, channels))
        classes = list(FASHION_MNIST_CLASSES)
    elif dataset == "imagefolder":
        if not data_dir:
            raise UserError("--data-dir is required for --dataset imagefolder (a folder with train/ and val/)")
        train = ImageFolderDataset(str(Path(data_dir) / "train"), train_transform(p, channels), skip_bad)
        val = ImageFolderDataset(str(Path(data_dir) / "val"), eval_transform(p, channels), skip_bad)
        if train.classes != val.classes:
            raise UserError(f"{data_dir}: train/ and val/ have different class folders")
        classes = list(train.classes)
    else:
        raise UserError(f"unknown dataset {dataset!r}; valid values: 'fashion-mnist', 'imagefolder'")
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"no images found in {data_dir}")
    return Splits(_subset(train, train_subset), _subset(val, val_subset), classes)


def _subset(ds: Dataset, n: int | None) -> Dataset:
    """The first n samples spread evenly over the set (deterministic), or all of it."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    idx = torch.linspace(0, len(ds) - 1, n).long().tolist()  # type: ignore[arg-type]
    return torch.utils.data.Subset(ds, idx)
