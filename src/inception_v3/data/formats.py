"""Every format a set of images comes in, one registry line each, and the one parser of the ways commands and
Python callers name a set: a spec string (a folder, `x.zip`, `x.npz`, `wds:DIR/PATTERN`, `hf:NAME[:SPLIT]`,
`fashion-mnist:[DIR:]SPLIT`), `--dataset NAME --data-dir D --split S`, file lists and globs, or from Python a
uint8 tensor, an iterable of them, or a generator callable.

Adding a format: a module with an `open(spec, columns) -> ImageSource` function and one `Format` line below.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import UserError
from .fashion_mnist import open_fashion_mnist
from .folders import FileImages, open_folder, open_inputs, open_zip
from .hf_datasets import is_saved_dataset, open_hf
from .image_io import is_image_file
from .npz_batches import open_npz
from .shards import open_shards
from .sources import COLUMNS, Format, ImageSource, StreamedImages, tensor_images

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("imagefolder", open_folder, "a folder of images (with one sub-folder per class: labeled)"),
        Format("zip", open_zip, "a zip file of images", suffix=".zip"),
        Format(
            "npz",
            open_npz,
            "a sample batch: .npz with arr_0 (N x H x W x 3 uint8), optional arr_1 labels",
            suffix=".npz",
        ),
        Format(
            "wds", open_shards, "WebDataset tar shards: wds:DIR/PATTERN (or a URL pattern)", prefix="wds:", splits=None
        ),
        Format(
            "hf",
            open_hf,
            "a Hugging Face dataset split: hf:NAME_OR_PATH[:SPLIT]",
            prefix="hf:",
            sep=":",
            splits=("train", "validation"),
        ),
        Format(
            "fashion-mnist",
            open_fashion_mnist,
            "Fashion-MNIST: fashion-mnist:[DIR:]SPLIT",
            prefix="fashion-mnist:",
            sep=":",
            splits=("train", "test"),
        ),
    )
}
SPEC_HELP = "a folder, .zip, .npz sample batch, wds:DIR/PATTERN, hf:NAME[:SPLIT] or fashion-mnist:[DIR:]SPLIT"


def format_of(spec: str) -> Format:
    """The format a spec string names: by its prefix, else by its suffix, else a folder (a Hugging Face
    `save_to_disk` folder is a dataset)."""
    named = [f for f in FORMATS.values() if f.prefix and spec.startswith(f.prefix)]
    named += [f for f in FORMATS.values() if f.suffix and spec.lower().endswith(f.suffix)]
    if named:
        return named[0]
    return FORMATS["hf"] if is_saved_dataset(spec) else FORMATS["imagefolder"]


def open_source(
    spec: Any, num_samples: int | None = None, batch_size: int = 50, columns: tuple[str, str] = COLUMNS
) -> ImageSource:
    """A source from a spec string or path, an `ImageSource`, a uint8 N x 3 x H x W tensor, an iterable of them,
    or a generator callable `generate(n)` (with `num_samples`, called for `batch_size` images at a time)."""
    if isinstance(spec, ImageSource):
        return spec
    if isinstance(spec, Tensor):
        return tensor_images(spec)
    if callable(spec) or (isinstance(spec, Iterable) and not isinstance(spec, (str, os.PathLike))):
        return StreamedImages(spec, num_samples, batch_size)
    text = str(spec)
    fmt = format_of(text)
    if fmt.prefix:
        return fmt.open(text.removeprefix(fmt.prefix), columns)
    path = Path(text)
    if path.is_file() and not fmt.suffix and is_image_file(path):
        return FileImages([path], text)
    if not path.exists():
        raise UserError(f"{text} does not exist (expected {SPEC_HELP})")
    if path.is_file() and not fmt.suffix:
        raise UserError(f"{text} is not an image, a .zip or a .npz (expected {SPEC_HELP})")
    return fmt.open(text, columns)


def resolve_format(dataset: str | None, data_dir: str | None) -> Format:
    """The format of `--dataset D --data-dir DIR`: a spec string in DIR (`hf:NAME`, `wds:DIR`) brings its own, as
    does a `save_to_disk` folder; else D; else what DIR is (a folder, .zip, .npz)."""
    if dataset is not None and dataset not in FORMATS:
        raise UserError(f"unknown `dataset` {dataset!r}; valid values: {', '.join(FORMATS)}")
    carried = format_of(data_dir) if data_dir else FORMATS["imagefolder"]
    if (data_dir and carried.prefix and data_dir.startswith(carried.prefix)) or dataset in (None, "imagefolder"):
        return carried
    return FORMATS[str(dataset)]


def source_spec(dataset: str | None, data_dir: str | None, split: str | None) -> str:
    """The spec of `--dataset D --data-dir DIR --split S`: the format's prefix, DIR and S joined."""
    if dataset is None and data_dir is None:
        raise UserError("name the data: give `data_dir` (a folder, or a spec such as wds:DIR/PATTERN)")
    fmt = resolve_format(dataset, data_dir)
    return fmt.spec(data_dir.removeprefix(fmt.prefix) if data_dir else data_dir, split)


def open_split(
    dataset: str | None, data_dir: str | None, split: str | None, columns: tuple[str, str] = COLUMNS
) -> ImageSource:
    """One split of a data set named the way `train` names it (`--dataset`, `--data-dir`, `--train-split`)."""
    return open_source(source_spec(dataset, data_dir, split), columns=columns)


def default_splits(dataset: str | None, data_dir: str | None) -> tuple[str, str]:
    """The (training, validation) split names of a format when none are given."""
    fmt = resolve_format(dataset, data_dir)
    if fmt.splits is None:
        raise UserError(
            f"the {fmt.name} format has no default splits: name them with `train_split` and `val_split` "
            f"(for shards, patterns such as 'train-{{000000..000099}}.tar')"
        )
    return fmt.splits


def open_images(inputs: Any, columns: tuple[str, str] = COLUMNS) -> ImageSource:
    """What `predict` and `features` read: image files, folders and glob patterns (a list of strings), or one
    source of any kind (`open_source`)."""
    if not isinstance(inputs, list):
        return open_source(inputs, columns=columns)
    if len(inputs) == 1 and not isinstance(inputs[0], (str, os.PathLike)):
        return open_source(inputs[0], columns=columns)
    if len(inputs) == 1 and (format_of(str(inputs[0])).name != "imagefolder" or Path(inputs[0]).is_dir()):
        return open_source(inputs[0], columns=columns)
    return open_inputs([str(i) for i in inputs])
