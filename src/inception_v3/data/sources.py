"""The one shape of a set of images, whatever holds them: an `ImageSource` gives image i as stored (its encoded
bytes, or its pixels), its label when the set has labels, the class names, a name for messages and a
fingerprint for caches. Every command reads images through it (the formats and the spec parser are in
`formats.py`); `SourceDataset` makes one a training set.

Streamed sources (an iterable of uint8 batches, a generator callable) have no random access: they give their
images once, in order, through `stream()`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import UserError
from .image_io import BadSample, Stored, decode_stored

COLUMNS = ("image", "label")  # the image and label columns (or members) a source reads unless told otherwise


@dataclass(frozen=True)
class Format:
    """One kind of image set: how a spec string names it and how it is opened.

    A spec is `PREFIX` + the rest (`wds:DIR/PATTERN`, `hf:NAME[:SPLIT]`), or a path the format claims by its
    suffix (`.zip`, `.npz`) or by being a folder. `--dataset NAME --data-dir D --split S` composes the spec
    `PREFIX + D + SEP + S` (`SEP` "/" joins a folder and a file or pattern in it, ":" a dataset and a split)."""

    name: str
    open: Callable[[str, tuple[str, str]], ImageSource]  # (spec without the prefix, (image, label) columns)
    description: str
    prefix: str = ""
    suffix: str = ""
    sep: str = "/"
    splits: tuple[str, str] | None = ("train", "val")  # the training and validation splits when none is named

    def spec(self, data_dir: str | None, split: str | None) -> str:
        """The spec of `split` of the data at `data_dir` (either may be missing)."""
        return self.prefix + self.sep.join(p for p in (data_dir, split) if p)


class ImageSource:
    """A set of images: `stored(i)`, `item_name(i)`, `labels` (N int64, or None), `classes` (names, or None:
    labels are numbers), `channels` (1 when every image is gray, else None), `fingerprint` (None: not cacheable)."""

    name: str = ""
    labels: np.ndarray | None = None
    classes: list[str] | None = None
    channels: int | None = None
    fingerprint: str | None = None
    streamed: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def stored(self, i: int) -> Stored:
        """Image i as stored: its encoded bytes (`Encoded`) or its pixels (H x W or H x W x C uint8)."""
        raise NotImplementedError

    def item_name(self, i: int) -> str:
        """How image i is named in a message: its file, shard and key, or dataset and row."""
        return f"{self.name}[{i}]"

    def stream(self) -> Iterator[np.ndarray]:
        """A streamed source's images, once, in order, as H x W x 3 uint8."""
        raise TypeError(f"{self.name} is read by index")

    @property
    def labeled(self) -> bool:
        """Whether any image has a label (-1 in `labels`: this one has none)."""
        return self.labels is not None and bool((np.asarray(self.labels) >= 0).any())

    def class_names(self) -> list[str]:
        """The class names, or the label numbers as names."""
        if self.classes is not None:
            return list(self.classes)
        top = int(self.labels.max()) + 1 if self.labels is not None and len(self.labels) else 0
        return [str(i) for i in range(top)]

    def require_labels(self) -> np.ndarray:
        """The labels, for what needs one for every image (training, evaluation); one line naming the split when
        it has none (a folder without class sub-folders, a test split stored with label -1) or some lack one."""
        if not self.labeled:
            raise UserError(
                f"{self.name} has no labels (images without a class: a folder needs one sub-folder per "
                f"class, shards a .cls, a dataset a label column with labels >= 0)"
            )
        assert self.labels is not None
        missing = np.flatnonzero(np.asarray(self.labels) < 0)
        if len(missing):
            raise UserError(
                f"{len(missing)} of the {len(self)} images of {self.name} have no label (first: "
                f"{self.item_name(int(missing[0]))}); every image needs one here"
            )
        return self.labels


class ArrayImages(ImageSource):
    """Images held as one uint8 array: N x H x W (gray) or N x H x W x C."""

    def __init__(
        self,
        pixels: np.ndarray,
        name: str,
        labels: np.ndarray | None = None,
        classes: list[str] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4) or pixels.shape[3:] not in ((), (1,), (3,)):
            raise UserError(
                f"{name}: expected uint8 images of N x H x W or N x H x W x 3, got {pixels.dtype} {tuple(pixels.shape)}"
            )
        self.pixels, self.name, self.labels, self.classes, self.fingerprint = pixels, name, labels, classes, fingerprint
        self.channels = 1 if pixels.ndim == 3 or pixels.shape[3] == 1 else None

    def __len__(self) -> int:
        return len(self.pixels)

    def stored(self, i: int) -> Stored:
        return self.pixels[i]


class SubsetImages(ImageSource):
    """Some images of a source, by their indices there (in the order given)."""

    def __init__(self, source: ImageSource, indices: np.ndarray) -> None:
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
        self.name, self.classes, self.channels = source.name, source.classes, source.channels
        self.labels = None if source.labels is None else source.labels[self.indices]
        digest = hashlib.sha256(self.indices.tobytes()).hexdigest()[:16]
        self.fingerprint = None if source.fingerprint is None else f"{source.fingerprint}:subset:{digest}"

    def __len__(self) -> int:
        return len(self.indices)

    def stored(self, i: int) -> Stored:
        return self.source.stored(int(self.indices[i]))

    def item_name(self, i: int) -> str:
        return self.source.item_name(int(self.indices[i]))


def tensor_images(images: Tensor, name: str = "tensor") -> ArrayImages:
    """A uint8 N x 3 x H x W tensor, by index."""
    return ArrayImages(batch_pixels(images, name), name)


def batch_pixels(batch: Any, name: str) -> np.ndarray:
    if not isinstance(batch, Tensor) or batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        got = f"{batch.dtype} {tuple(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
        raise UserError(f"{name}: expected uint8 tensors of shape N x 3 x H x W, got {got}")
    return batch.permute(0, 2, 3, 1).cpu().numpy()


class StreamedImages(ImageSource):
    """uint8 N x 3 x H x W batches as they come: from an iterable, or from `generate(n)` called until
    `num_samples` are drawn (the images are used as they come, never all held)."""

    streamed = True

    def __init__(
        self, batches: Iterable[Tensor] | Callable[[int], Tensor], num_samples: int | None = None, batch_size: int = 50
    ) -> None:
        self.batches, self.num_samples, self.batch_size = batches, num_samples, batch_size
        self.name = "the generator" if callable(batches) else "tensors"
        if callable(batches) and not num_samples:
            raise UserError("a generator input needs `num_samples` (how many images to draw)")

    def __len__(self) -> int:
        return self.num_samples or 0  # 0: an iterable's length is known once it is read

    def stream(self) -> Iterator[np.ndarray]:
        for batch in self._batches():
            yield from batch_pixels(batch, self.name)

    def _batches(self) -> Iterator[Tensor]:
        if not callable(self.batches):
            yield from self.batches
            return
        left = self.num_samples or 0
        while left > 0:
            n = min(self.batch_size, left)
            batch = self.batches(n)
            if not isinstance(batch, Tensor) or len(batch) != n:
                raise UserError(
                    f"the generator returned {type(batch).__name__} {getattr(batch, 'shape', '')} when "
                    f"asked for {n} images; it must return a uint8 tensor of n x 3 x H x W"
                )
            yield batch
            left -= n


class SourceDataset(Dataset):
    """A labeled source as a training or validation set: (transform(image), label), or a BadSample naming an
    image that does not decode (inside a DataLoader worker too), so the main process decides."""

    def __init__(self, source: ImageSource, transform: Callable[[Tensor], Tensor]) -> None:
        self.source, self.transform = source, transform
        self.labels = source.require_labels()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Any:
        try:
            image = decode_stored(self.source.stored(i))
        except (UserError, OSError) as exc:
            name = self.source.item_name(i)
            return BadSample(name, str(exc) if isinstance(exc, UserError) else f"{name}: {exc}")
        return self.transform(image), int(self.labels[i])
