"""Training and validation sets from any source (`formats.py`), with an optional subset of classes and of images.

An image that cannot be decoded becomes a `BadSample` (inside a DataLoader worker too), so the main
process decides, the same way for any number of workers: stop with one line naming the file, or
skip and count it (`skip_bad_images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ..errors import UserError
from .formats import default_splits, open_split
from .image_io import BadSample
from .sources import COLUMNS, ImageSource, SourceDataset
from .transforms import Preprocessing, eval_transform, train_transform


def collate(batch: list[Any]) -> tuple[Tensor, Tensor, list[BadSample]]:
    """Stack the good samples; the third element lists the unreadable ones."""
    bad = [b for b in batch if isinstance(b, BadSample)]
    good = [b for b in batch if not isinstance(b, BadSample)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    return torch.stack([b[0] for b in good]), torch.tensor([b[1] for b in good], dtype=torch.long), bad


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
            raise UserError(
                f"`classes`: unknown class {item!r}; the data has {len(available)} classes: "
                f"{', '.join(available[:12])}{', ...' if len(available) > 12 else ''}"
            )
    if len(set(out)) != len(out) or len(out) < 2:
        raise UserError(f"`classes` must name at least 2 different classes, got {spec!r}")
    return out


class RelabeledSubset(Dataset):
    """The samples of `keep` classes, relabeled 0..k-1 in the order given."""

    def __init__(self, ds: SourceDataset, keep: list[int]) -> None:
        self.ds, self.mapping = ds, {old: new for new, old in enumerate(keep)}
        self.indices = np.flatnonzero(np.isin(ds.labels, keep)).tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        sample = self.ds[self.indices[i]]
        return sample if isinstance(sample, BadSample) else (sample[0], self.mapping[sample[1]])


def split_sources(
    dataset: str | None,
    data_dir: str | None,
    train_split: str | None = None,
    val_split: str | None = None,
    columns: tuple[str, str] = COLUMNS,
) -> tuple[ImageSource, ImageSource, list[str]]:
    """The training and validation sources (each format's default splits when none are named: a folder's
    train/ and val/, a dataset's train and validation, Fashion-MNIST's train and test) and their class names."""
    if not (train_split and val_split):
        defaults = default_splits(dataset, data_dir)
        train_split, val_split = train_split or defaults[0], val_split or defaults[1]
    train, val = (open_split(dataset, data_dir, split, columns) for split in (train_split, val_split))
    if train.classes is not None and val.classes is not None and train.classes != val.classes:
        raise UserError(
            f"{train.name} and {val.name} have different classes ({len(train.classes)} vs "
            f"{len(val.classes)}: {', '.join(sorted(set(train.classes) ^ set(val.classes))[:5])})"
        )
    names = train.classes or val.classes or max(train.class_names(), val.class_names(), key=len)  # or label numbers
    for source in (train, val):
        labels = source.require_labels()
        if len(labels) and labels.max() >= len(names):
            raise UserError(f"a sample of {source.name} has label {labels.max()} but the classes are {len(names)}")
    return train, val, names


def build_datasets(
    train_source: ImageSource,
    val_source: ImageSource,
    names: list[str],
    p: Preprocessing,
    channels: int,
    train_subset: int | None = None,
    val_subset: int | None = None,
    classes: str | None = None,
) -> Splits:
    """Train and validation sets with the Inception preprocessing, a subset of `classes` and of images."""
    train: Dataset = SourceDataset(train_source, train_transform(p, channels))
    val: Dataset = SourceDataset(val_source, eval_transform(p, channels))
    keep = parse_classes(classes, names)
    if keep is not None:
        train, val = RelabeledSubset(train, keep), RelabeledSubset(val, keep)  # type: ignore[arg-type]
        names = [names[i] for i in keep]
    if len(train) == 0 or len(val) == 0:  # type: ignore[arg-type]
        raise UserError(f"no images found in {train_source.name if len(train) == 0 else val_source.name}")  # type: ignore[arg-type]
    return Splits(spread_subset(train, train_subset), spread_subset(val, val_subset), names)


def spread_subset(ds: Dataset, n: int | None) -> Dataset:
    """n samples spread evenly over the set (deterministic), or all of it."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    idx = torch.linspace(0, len(ds) - 1, n).long().tolist()  # type: ignore[arg-type]
    return Subset(ds, idx)
