"""What the generative-model scores read: image folders (recursive), zip files, Fashion-MNIST's splits by
name, and from Python uint8 tensors or a generator. Every image is decoded as the tools decode it (Pillow,
`convert("RGB")`) into an H x W x 3 uint8 array, in a stable order, with a fingerprint for the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..data.datasets import indexed_images
from ..data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from ..data.hf_datasets import HfImages
from ..data.image_io import IMAGE_SUFFIXES, is_image_file
from ..data.shards import ShardDataset
from ..errors import UserError

FASHION_MNIST_PREFIX = "fashion-mnist:"


@dataclass
class ImageSource:
    """A set of images to score: `read(i)` gives image i as H x W x 3 uint8 RGB (or raises UserError);
    streamed sources (tensors, generators) give them in order through `stream()` instead."""

    name: str
    count: int
    read: Callable[[int], np.ndarray]
    label: Callable[[int], str]  # how image i is named in a message (its file)
    fingerprint: str | None  # None: not cacheable (tensors, generators)
    stream: Callable[[], Iterable[np.ndarray]] | None = None  # tensors, generators: read in order, once


def decode_rgb(data: Any, name: str) -> np.ndarray:
    """Pillow's decode of a file or file object, `convert("RGB")` as the tools do; one line if it fails."""
    try:
        with Image.open(data) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot decode image {name} ({type(exc).__name__}); fix or remove it") from None


class _Files:
    """Reads image files by index (a plain class: DataLoader workers started by spawn can pickle it)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __call__(self, i: int) -> np.ndarray:
        return decode_rgb(self.files[i], str(self.files[i]))

    def label(self, i: int) -> str:
        return str(self.files[i])


def folder_source(path: Path) -> ImageSource:
    files = sorted((p for p in path.rglob("*") if p.is_file() and is_image_file(p)), key=str)
    if not files:
        raise UserError(f"{path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}, in sub-folders too)")
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(path)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    reader = _Files(files)
    return ImageSource(str(path), len(files), reader, reader.label, f"folder:{path.resolve()}:{digest.hexdigest()}")


class _ZipReader:
    """Members of a zip file, opened once per process (DataLoader workers each open their own)."""

    def __init__(self, path: Path, members: list[str]) -> None:
        self.path, self.members, self.pid = path, members, -1
        self.zf: zipfile.ZipFile | None = None

    def __call__(self, i: int) -> np.ndarray:
        if self.zf is None or self.pid != os.getpid():
            self.zf, self.pid = zipfile.ZipFile(self.path), os.getpid()
        with self.zf.open(self.members[i]) as f:
            return decode_rgb(f, f"{self.path}:{self.members[i]}")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "zf": None}

    def label(self, i: int) -> str:
        return f"{self.path}:{self.members[i]}"


def zip_source(path: Path) -> ImageSource:
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(n for n in zf.namelist() if is_image_file(n) and not n.endswith("/"))
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a zip file (or it is damaged)") from None
    if not members:
        raise UserError(f"{path} holds no images")
    st = path.stat()
    reader = _ZipReader(path, members)
    return ImageSource(
        str(path), len(members), reader, reader.label, f"zip:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    )


def fashion_mnist_source(spec: str, data_dir: str | None = None) -> ImageSource:
    split = spec[len(FASHION_MNIST_PREFIX) :]
    if split not in ("train", "test"):
        raise UserError(f"unknown Fashion-MNIST split {split!r} in {spec!r}; use fashion-mnist:train or "
                        f"fashion-mnist:test")  # fmt: skip
    images, _ = load_fashion_mnist(data_dir or FASHION_MNIST_DIR, split)
    reader = _GrayArray(images.numpy(), spec)
    return ImageSource(spec, len(images), reader, reader.label, f"{spec}:{len(images)}")


class _GrayArray:
    """Gray images held in memory, as RGB the way Pillow's convert("RGB") makes it: the value in every channel."""

    def __init__(self, gray: np.ndarray, name: str) -> None:
        self.gray, self.name = gray, name

    def __call__(self, i: int) -> np.ndarray:
        return np.repeat(self.gray[i][:, :, None], 3, axis=2)

    def label(self, i: int) -> str:
        return f"{self.name}[{i}]"


def _hwc(batch: Any, name: str) -> Iterator[np.ndarray]:
    """The images of one uint8 N x 3 x H x W batch as H x W x 3 arrays."""
    if not isinstance(batch, Tensor) or batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        got = f"{batch.dtype} {tuple(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
        raise UserError(f"{name}: expected uint8 tensors of shape N x 3 x H x W, got {got}")
    yield from batch.permute(0, 2, 3, 1).cpu().numpy()


def tensor_source(images: Tensor | Iterable[Tensor], name: str = "tensor") -> ImageSource:
    """uint8 N x 3 x H x W tensors: one, or an iterable of batches (read once, as they come)."""
    batches = [images] if isinstance(images, Tensor) else images
    count = len(images) if isinstance(images, Tensor) else 0  # unknown for an iterable until it is read

    def stream() -> Iterator[np.ndarray]:
        for batch in batches:
            yield from _hwc(batch, name)

    return ImageSource(name, count, _no_random_access, lambda i: f"{name}[{i}]", None, stream=stream)


def generator_source(generate: Callable[[int], Tensor], num_samples: int, batch_size: int) -> ImageSource:
    """`generate(n)` -> n uint8 images (n x 3 x H x W), called batch by batch until `num_samples` are drawn
    (the images are scored as they come, never all held)."""

    def stream() -> Iterator[np.ndarray]:
        left = num_samples
        while left > 0:
            n = min(batch_size, left)
            batch = generate(n)
            if not isinstance(batch, Tensor) or len(batch) != n:
                raise UserError(f"the generator returned {type(batch).__name__} {getattr(batch, 'shape', '')} when "
                                f"asked for {n} images; it must return a uint8 tensor of n x 3 x H x W")  # fmt: skip
            yield from _hwc(batch, "the generator")
            left -= n

    return ImageSource("generator", num_samples, _no_random_access, lambda i: f"generator[{i}]", None, stream=stream)


def _no_random_access(i: int) -> np.ndarray:
    raise TypeError("a streamed source is read in order through its stream()")


class _Indexed:
    """Images of WebDataset shards or a Hugging Face dataset split, by index: their stored bytes decoded as
    the tools decode files (`decode_rgb`)."""

    def __init__(self, ds: ShardDataset | HfImages) -> None:
        self.ds = ds

    def __call__(self, i: int) -> np.ndarray:
        return decode_rgb(io.BytesIO(self.ds.raw(i)), self.ds.samples[i][0])

    def label(self, i: int) -> str:
        return self.ds.samples[i][0]


def is_indexed(spec: str | os.PathLike[str]) -> bool:
    """Whether `spec` names shards (`wds:...`) or a Hugging Face split (`hf:...`)."""
    return str(spec).startswith(("wds:", "hf:"))


def indexed_source(spec: str) -> ImageSource:
    """`wds:DIR/PATTERN` (tar shards, braces expanded) or `hf:NAME_OR_PATH[:SPLIT]` (default split: validation)."""
    kind, _, rest = spec.partition(":")
    if kind == "wds":
        folder, pattern = os.path.split(rest)
        ds, _ = indexed_images("wds", folder or ".", pattern, spec)
        stats = ",".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in ds.shards)  # type: ignore[union-attr]
        fingerprint: str | None = f"{spec}:{stats}"
    else:
        name, sep, split = rest.rpartition(":")
        ds, _ = indexed_images("hf", name if sep else rest, split if sep else None, spec)
        fingerprint = None  # a hub dataset's revision is not known here: not cached
    reader = _Indexed(ds)
    return ImageSource(spec, len(ds), reader, reader.label, fingerprint)


def open_source(spec: Any, num_samples: int | None = None, batch_size: int = 50) -> ImageSource:
    """A source from a path (folder, .zip, `fashion-mnist:train|test`, `wds:DIR/PATTERN`, `hf:NAME[:SPLIT]`),
    tensors, or a generator callable."""
    if callable(spec) and not isinstance(spec, (str, os.PathLike)):
        if not num_samples:
            raise UserError("a generator input needs num_samples (how many images to draw)")
        return generator_source(spec, num_samples, batch_size)
    if not isinstance(spec, (str, os.PathLike)):
        return tensor_source(spec)
    text = str(spec)
    if text.startswith(FASHION_MNIST_PREFIX):
        return fashion_mnist_source(text)
    if is_indexed(text):
        return indexed_source(text)
    path = Path(text)
    if path.is_dir():
        return folder_source(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return zip_source(path)
    if not path.exists():
        raise UserError(f"{text} does not exist (expected a folder of images, a .zip, a .npz of statistics, or "
                        f"fashion-mnist:train / fashion-mnist:test)")  # fmt: skip
    raise UserError(f"{text} is neither a folder of images, a .zip nor a .npz of statistics")
