"""Hugging Face datasets read map-style through the `datasets` library: a hub name (downloaded once into
its cache), a folder written by `save_to_disk`, or a folder of Parquet files. Images and labels come from
named columns (`image`, `label` by default); class names from the label column's `ClassLabel`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from ..errors import UserError, reason
from ..utils.progress import on_terminal
from .image_io import BadSample, decode_image_bytes


def load_split(spec: str, split: str, image_column: str, label_column: str) -> Any:
    """One split of a dataset, its columns checked; one line when it cannot be had."""
    try:
        import datasets
    except ImportError:
        raise UserError("--dataset hf needs the datasets library: pip install 'inception-v3[hf]'") from None
    path = Path(spec)
    if not on_terminal():  # the library's bars write carriage returns into logs
        datasets.disable_progress_bars()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(spec)
    except Exception as exc:  # the library raises many types: offline, unknown name, bad files
        hint = "" if path.exists() else (f"; on a machine with internet, `huggingface-cli download --repo-type "
                                         f"dataset {spec}` fetches it into the cache")  # fmt: skip
        raise UserError(f"cannot load the dataset {spec}: {reason(exc)}{hint}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"the dataset {spec} has no split {split!r}; its splits: {', '.join(loaded)}")
        loaded = loaded[split]
    elif split != "train":  # one Dataset saved alone: its rows are not every split at once
        raise UserError(f"the dataset {spec} holds one split (saved without a DatasetDict), used as 'train'; it "
                        f"has no split {split!r}: save a DatasetDict with both splits")  # fmt: skip
    missing = [c for c in (image_column, label_column) if c not in loaded.column_names]
    if missing:
        raise UserError(f"the dataset {spec} ({split}) has no column {missing[0]!r}; its columns: "
                        f"{', '.join(loaded.column_names)} (pass --image-column / --label-column)")  # fmt: skip
    return loaded


def class_names(ds: Any, label_column: str, labels: list[int]) -> list[str]:
    """The label column's ClassLabel names, else the label numbers."""
    names = getattr(ds.features[label_column], "names", None)
    return list(names) if names else [str(i) for i in range(max(labels) + 1)]


class HfImages(Dataset):
    """A split's rows as (transformed image, label), like an image folder's: the image column's stored bytes
    are decoded as image files are (`decode_image_bytes`), so a dataset trains as its folder does; an image
    that does not decode is a BadSample named by the dataset and row."""

    def __init__(self, ds: Any, name: str, image_column: str, label_column: str,
                 transform: Callable[[Tensor], Tensor]) -> None:  # fmt: skip
        import datasets

        if isinstance(ds.features[image_column], datasets.Image):  # the bytes, not Pillow's decode
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        self.ds, self.name, self.image_column, self.transform = ds, name, image_column, transform
        labels = [int(y) for y in ds[label_column]]
        self.samples = [(f"{name}[{i}]", y) for i, y in enumerate(labels)]

    def __len__(self) -> int:
        return len(self.samples)

    def raw(self, i: int) -> bytes:
        """Row i's image bytes, as stored (or read from the file the row names)."""
        value = self.ds[i][self.image_column]
        if isinstance(value, dict):  # datasets.Image without decoding: {"bytes": ..., "path": ...}
            if value.get("bytes") is not None:
                return bytes(value["bytes"])
            if value.get("path"):
                from datasets.utils.file_utils import xopen  # local files and the hub's remote ones alike

                with xopen(value["path"], "rb") as f:
                    return f.read()
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        raise UserError(f"{self.samples[i][0]}: the column {self.image_column!r} holds {type(value).__name__}, "
                        f"not an image")  # fmt: skip

    def __getitem__(self, i: int) -> Any:
        name = self.samples[i][0]
        try:
            image = decode_image_bytes(self.raw(i), name)
        except (UserError, OSError) as exc:
            return BadSample(name, str(exc) if isinstance(exc, UserError) else f"{name}: {exc}")
        return self.transform(image), self.samples[i][1]
