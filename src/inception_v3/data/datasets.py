"""Datasets: Fashion-MNIST in memory and ImageFolder trees, with an optional subset of classes.

An image that cannot be decoded becomes a `BadSample` (inside a DataLoader worker too), so the main
process decides, the same way for any number of workers: stop with one line naming the file, or
skip and count it (`--skip-bad-images`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from ..errors import UserError
from .fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist
from .hf_datasets import HfImages, load_split
from .hf_datasets import class_names as hf_class_names
from .image_io import BadSample, Encoded, is_image_file, read_image
from .shards import ShardDataset, shard_paths
from .shards import class_names as shard_class_names
from .transforms import Preprocessing, eval_transform, train_transform

DATASETS = ("fashion-mnist", "imagefolder", "wds", "hf")


class TensorImages(Dataset):
    """In-memory gray images (N x H x W uint8) with labels, transformed one sample at a time."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.images[i].unsqueeze(0)), int(self.labels[i])


class ImageFolderDataset(datasets.ImageFolder):
    """`ImageFolder` (one sub-folder per class) decoded with `read_image`; unreadable files are BadSamples."""

    def __init__(self, root: str, transform: Callable[[Tensor], Tensor]) -> None:
        if not Path(root).is_dir():
            raise UserError(f"image directory {root} does not exist")
        try:
            super().__init__(root, transform=transform, loader=read_image, is_valid_file=is_image_file)
        except (FileNotFoundError, RuntimeError) as exc:
            raise UserError(f"{root}: {exc}") from None

    def __getitem__(self, i: int) -> Any:
        path, label = self.samples[i]
        try:
            image = self.loader(path)
        except UserError as exc:
            return BadSample(path, str(exc))
        return self.transform(image), label


def collate(batch: list[Any]) -> tuple[Tensor, Tensor, list[BadSample]]:
    """Stack the good samples; the third element lists the unreadable ones."""
    bad = [b for b in batch if isinstance(b, BadSample)]
    good = [b for b in batch if not isinstance(b, BadSample)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    images = torch.stack([b[0] for b in good])
    labels = torch.tensor([b[1] for b in good], dtype=torch.long)
    return images, labels, bad


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    classes: list[str]


def parse_classes(spec: str | None, available: list[str]) -> list[int] | None:
    """Indices of the classes `spec` names (comma-separated names or indices), in its order; None: all."""
    if not spec:
        return None
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if item in available:
            out.append(available.index(item))
        elif item.isdigit() and int(item) < len(available):
            out.append(int(item))
        else:
            raise UserError(f"--classes: unknown class {item!r}; the data has {len(available)} classes: "
                            f"{', '.join(available[:12])}{', ...' if len(available) > 12 else ''}")  # fmt: skip
    if len(set(out)) != len(out) or len(out) < 2:
        raise UserError(f"--classes must name at least 2 different classes, got {spec!r}")
    return out


class RelabeledSubset(Dataset):
    """The samples of `keep` classes, relabeled 0..k-1 in the order given."""

    def __init__(self, ds: Dataset, labels: list[int], keep: list[int]) -> None:
        mapping = {old: new for new, old in enumerate(keep)}
        self.ds, self.mapping = ds, mapping
        self.indices = [i for i, y in enumerate(labels) if y in mapping]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        sample = self.ds[self.indices[i]]
        return sample if isinstance(sample, BadSample) else (sample[0], self.mapping[sample[1]])


def _labels(ds: Dataset) -> list[int]:
    return ds.labels.tolist() if isinstance(ds, TensorImages) else [y for _, y in ds.samples]  # type: ignore[attr-defined]


def build_datasets(dataset: str, data_dir: str | None, p: Preprocessing, channels: int,
                   train_subset: int | None = None, val_subset: int | None = None, classes: str | None = None,
                   train_split: str | None = None, val_split: str | None = None, image_column: str = "image",
                   label_column: str = "label") -> Splits:  # fmt: skip
    """Train and validation sets: `fashion-mnist`, an `imagefolder` tree (data_dir/train, data_dir/val),
    WebDataset shards (`wds`: the split patterns under data_dir) or a Hugging Face dataset (`hf`)."""
    if dataset == "fashion-mnist":
        root = data_dir or FASHION_MNIST_DIR
        train: Dataset = TensorImages(*load_fashion_mnist(root, "train"), train_transform(p, channels))
        val: Dataset = TensorImages(*load_fashion_mnist(root, "test"), eval_transform(p, channels))
        names = list(FASHION_MNIST_CLASSES)
    elif dataset == "imagefolder":
        if not data_dir:
            raise UserError("--data-dir is required for --dataset imagefolder (a folder with train/ and val/)")
        train = ImageFolderDataset(str(Path(data_dir) / "train"), train_transform(p, channels))
        val = ImageFolderDataset(str(Path(data_dir) / "val"), eval_transform(p, channels))
        if train.classes != val.classes:
            raise UserError(f"{data_dir}: train/ and val/ have different class folders")
        names = list(train.classes)
    elif dataset == "wds":
        train_shards = shard_paths(data_dir, train_split, "--train-split")
        train = ShardDataset(train_shards, train_transform(p, channels))
        val = ShardDataset(shard_paths(data_dir, val_split, "--val-split"), eval_transform(p, channels))
        names = shard_class_names(train_shards[0].parent, [y for _, y in train.samples + val.samples])
    elif dataset == "hf":
        if not data_dir:
            raise UserError("--dataset hf needs --data-dir: a hub name, a save_to_disk folder or Parquet files")
        parts = []
        for split, default, transform in ((train_split, "train", train_transform(p, channels)),
                                          (val_split, "validation", eval_transform(p, channels))):  # fmt: skip
            ds = load_split(data_dir, split or default, image_column, label_column)
            parts.append(HfImages(ds, f"{data_dir}:{split or default}", image_column, label_column, transform))
        train, val = parts
        names = hf_class_names(parts[0].ds, label_column, [y for _, y in train.samples + val.samples])
    else:
        raise UserError(f"unknown dataset {dataset!r}; valid values: {', '.join(DATASETS)}")
    keep = parse_classes(classes, names)
    if keep is not None:
        train, val = RelabeledSubset(train, _labels(train), keep), RelabeledSubset(val, _labels(val), keep)
        names = [names[i] for i in keep]
    if len(train) == 0 or len(val) == 0:  # type: ignore[arg-type]
        raise UserError(f"no images found in {data_dir or dataset}")
    return Splits(spread_subset(train, train_subset), spread_subset(val, val_subset), names)


def indexed_images(
    dataset: str, data_dir: str | None, split: str | None, option: str, columns: tuple[str, str] = ("image", "label")
) -> tuple[ShardDataset | HfImages, list[str]]:
    """The untransformed images (uint8 C x H x W) and class names of WebDataset shards (`split`: their
    pattern under data_dir) or a Hugging Face dataset split (default: validation; `columns`: image and
    label), for evaluation and scoring; `option` names where the pattern came from, for messages."""
    if dataset == "wds":
        shards = shard_paths(data_dir, split, option)
        ds: ShardDataset | HfImages = ShardDataset(shards, _unchanged)
        return ds, shard_class_names(shards[0].parent, [y for _, y in ds.samples])
    if not data_dir:
        raise UserError("--dataset hf needs a dataset: a hub name, a save_to_disk folder or Parquet files")
    hf = load_split(data_dir, split or "validation", *columns)
    ds = HfImages(hf, f"{data_dir}:{split or 'validation'}", *columns, _unchanged)
    return ds, hf_class_names(hf, columns[1], [y for _, y in ds.samples])


def stored_image(ds: ShardDataset | HfImages, i: int) -> Encoded:
    """Image i of shards or an HF split as its stored bytes, named by shard and key or dataset and row."""
    return Encoded(ds.raw(i), ds.samples[i][0])


def _unchanged(image: Tensor) -> Tensor:
    return image


def spread_subset(ds: Dataset, n: int | None) -> Dataset:
    """n samples spread evenly over the set (deterministic), or all of it."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    idx = torch.linspace(0, len(ds) - 1, n).long().tolist()  # type: ignore[arg-type]
    return Subset(ds, idx)
