"""Hugging Face datasets as a source, `hf:NAME_OR_PATH[:SPLIT]` (default split: validation), read by index
through the `datasets` library: a hub name (downloaded once into its cache), a folder written by
`save_to_disk`, or a folder of Parquet files. Images and labels come from named columns (`image`, `label` by
default); class names from the label column's `ClassLabel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, reason
from ..utils.progress import on_terminal
from .image_io import Encoded, Stored
from .sources import COLUMNS, ImageSource


def is_saved_dataset(path: str) -> bool:
    """Whether `path` is a folder written by `save_to_disk` (a DatasetDict or a Dataset)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in ("dataset_dict.json", "state.json"))


def load_split(spec: str, split: str | None, image_column: str, label_column: str) -> Any:
    """One split of a dataset (None: validation, or the one a Dataset saved alone holds), its columns checked;
    one line when it cannot be had."""
    try:
        import datasets
    except ImportError:
        raise UserError("Hugging Face datasets need the datasets library: pip install 'inception-v3[hf]'") from None
    path = Path(spec)
    if not on_terminal():  # the library's bars write carriage returns into logs
        datasets.disable_progress_bars()
    try:
        loaded = datasets.load_from_disk(str(path)) if is_saved_dataset(spec) else datasets.load_dataset(spec)
    except Exception as exc:  # the library raises many types: offline, unknown name, bad files
        fetch = f"`huggingface-cli download --repo-type dataset {spec}`"
        hint = "" if path.exists() else f"; on a machine with internet, {fetch} fetches it into the cache"
        raise UserError(f"cannot load the dataset {spec}: {reason(exc)}{hint}") from None
    if isinstance(loaded, datasets.DatasetDict):
        split = split or "validation"
        if split not in loaded:
            raise UserError(f"the dataset {spec} has no split {split!r}; its splits: {', '.join(loaded)}")
        loaded = loaded[split]
    elif split not in (None, "train"):  # one Dataset saved alone: its rows are not every split at once
        raise UserError(
            f"the dataset {spec} holds one split (saved without a DatasetDict), used as 'train'; it "
            f"has no split {split!r}: save a DatasetDict with both splits"
        )
    required = [image_column] if label_column == "label" else [image_column, label_column]  # "label" may be absent
    missing = [c for c in required if c not in loaded.column_names]
    if missing:
        raise UserError(
            f"the dataset {spec} ({split}) has no column {missing[0]!r}; its columns: "
            f"{', '.join(loaded.column_names)} (name them with `image_column` / `label_column`)"
        )
    return loaded


class HfImages(ImageSource):
    """A split's rows by index: the image column's stored bytes (not `datasets`' own decode, so a dataset
    trains as its folder does), named by dataset and row; labels from the label column."""

    def __init__(self, ds: Any, name: str, image_column: str, label_column: str) -> None:
        import datasets

        if isinstance(ds.features[image_column], datasets.Image):  # the bytes, not Pillow's decode
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        self.ds, self.name, self.image_column = ds, name, image_column
        if label_column in ds.column_names:  # ClassLabel's -1 (a test split's): no label, as datasets stores it
            column = ds[label_column]  # read once: a whole column of a large split
            if not all(isinstance(y, int) or y is None for y in column):
                raise UserError(
                    f"{name}: the label column {label_column!r} holds {type(ds[0][label_column]).__name__}, "
                    f"not class indices (a ClassLabel column); name another with `label_column`"
                )
            self.labels = np.array([-1 if y is None else int(y) for y in column], dtype=np.int64)
            names = getattr(ds.features[label_column], "names", None)
            self.classes = list(names) if names else None

    def __len__(self) -> int:
        return len(self.ds)

    def stored(self, i: int) -> Stored:
        """Row i's image bytes, as stored (or read from the file the row names)."""
        value = self.ds[i][self.image_column]
        if isinstance(value, dict):  # datasets.Image without decoding: {"bytes": ..., "path": ...}
            if value.get("bytes") is not None:
                return Encoded(bytes(value["bytes"]), self.item_name(i))
            if value.get("path"):
                from datasets.utils.file_utils import xopen  # local files and the hub's remote ones alike

                with xopen(value["path"], "rb") as f:
                    return Encoded(f.read(), self.item_name(i))
        if isinstance(value, (bytes, bytearray)):
            return Encoded(bytes(value), self.item_name(i))
        raise UserError(
            f"{self.item_name(i)}: the column {self.image_column!r} holds {type(value).__name__}, not an image"
        )


def open_hf(spec: str, columns: tuple[str, str] = COLUMNS) -> HfImages:
    """`NAME_OR_PATH[:SPLIT]` (default: validation, or the one split of a Dataset saved alone) as a source."""
    if not spec:
        raise UserError(
            "give the dataset as hf:NAME_OR_PATH[:SPLIT]: a hub name, a save_to_disk folder or Parquet files"
        )
    dataset, _, split = spec.rpartition(":") if ":" in spec else (spec, "", None)
    return HfImages(load_split(dataset, split, *columns), f"hf:{dataset}:{split or 'validation'}", *columns)
