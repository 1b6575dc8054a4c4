"""The one loop that runs a network over a set of images: `features`, `predict`, `evaluate` and the scores of
generative models (`inception_v3.scoring`) all go through `extract`.

Images are read and prepared in DataLoader workers (`Pipeline.prepare`: a scoring convention's decode and
resize, or the weights' own single crop; on a GPU, JPEGs are left encoded for the device to decode), then
`Pipeline.run` turns each batch into outputs on the device (taps, logits, class probabilities). The network
always sees the same batches, `batch_size` consecutive images of the source, however a streamed source hands
its images over. Outputs can be cached on disk per (source, pipeline).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data.image_io import Stored
from ..data.sources import ImageSource
from ..errors import UserError
from ..utils.io import atomic_savez, cache_root
from ..utils.progress import progress_bar


@dataclass(frozen=True)
class Pipeline:
    """What a pass over a source computes: `prepare` turns an image as stored into what `run` takes (it runs in
    DataLoader workers, so it must pickle: a module-level function or a `functools.partial` of one); `run`
    turns a list of prepared images into outputs with one row per image. `key` names what the two compute,
    for the cache (None: never cached)."""

    prepare: Callable[[Stored], Any]
    run: Callable[[list[Any]], dict[str, Tensor]]
    key: str | None = None


@dataclass
class Extracted:
    """Outputs of the readable images (`arrays`: name -> N x ...), which images of the source they are (`index`),
    and the unreadable images skipped (their error lines)."""

    arrays: dict[str, np.ndarray]
    index: np.ndarray
    skipped: list[str]


CACHE_FORMAT = 2  # in the cache key: a file of an older layout is never read (2: the skipped images kept too)


def as_stored(item: Stored) -> Stored:
    """A `Pipeline.prepare` that leaves images as stored (encoded JPEGs for a GPU to decode)."""
    return item


def cache_dir() -> Path:
    """Where outputs are cached: $INCEPTION_V3_CACHE/features, else ~/.cache/inception-v3/features."""
    return cache_root() / "features"


class _Prepared(Dataset):
    """Image i prepared in a worker; an image that cannot be read comes back as its error line."""

    def __init__(self, source: ImageSource, prepare: Callable[[Stored], Any]) -> None:
        self.source, self.prepare = source, prepare

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        try:
            return i, self.prepare(self.source.stored(i)), None
        except (UserError, OSError) as exc:
            return i, None, str(exc) if isinstance(exc, UserError) else f"cannot read {self.source.item_name(i)}: {exc}"


def _collate(items: list[tuple[int, Any, str | None]]) -> tuple[list[int], list[Any], list[str]]:
    good = [(i, x) for i, x, bad in items if bad is None]
    return [i for i, _ in good], [x for _, x in good], [bad for _, _, bad in items if bad is not None]


def _streamed(
    source: ImageSource, prepare: Callable[[Stored], Any], batch_size: int
) -> Iterator[tuple[list[int], list[Any], list[str]]]:
    """A streamed source in batches of `batch_size` consecutive images, whatever sizes it comes in."""
    images, start = iter(source.stream()), 0
    while batch := [prepare(image) for image in islice(images, batch_size)]:
        yield list(range(start, start + len(batch))), batch, []
        start += len(batch)


@torch.no_grad()
def extract(
    source: ImageSource,
    pipeline: Pipeline,
    *,
    batch_size: int = 64,
    workers: int = 2,
    progress: str | None = "features",
    skip_bad_images: bool = False,
    cache: bool = False,
) -> Extracted:
    """`pipeline.run` over every readable image of `source`, in order; from the cache when `cache` and this
    (source, pipeline) was computed before. An unreadable image stops it with one line, or is skipped and
    listed (`skip_bad_images`). `progress`: the progress bar's label (None: no bar)."""
    key = None
    if cache and source.fingerprint is not None and pipeline.key is not None:
        ident = json.dumps([CACHE_FORMAT, source.fingerprint, pipeline.key, skip_bad_images])
        key = cache_dir() / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.npz"
        if key.is_file():
            with np.load(key, allow_pickle=False) as cached:
                arrays = {k: cached[k] for k in cached.files if k not in ("index", "skipped")}
                return Extracted(arrays, cached["index"], cached["skipped"].tolist())
    batches: Iterable[tuple[list[int], list[Any], list[str]]]
    if source.streamed:
        batches = _streamed(source, pipeline.prepare, batch_size)
    else:
        batches = DataLoader(
            _Prepared(source, pipeline.prepare), batch_size=batch_size, num_workers=workers, collate_fn=_collate
        )
    out: dict[str, list[np.ndarray]] = {}
    index: list[int] = []
    skipped: list[str] = []
    with progress_bar(total=len(source) or None, desc=progress, unit="img", disable=progress is None) as bar:
        for kept, items, bad in batches:
            if bad and not skip_bad_images:
                raise UserError(f"{bad[0]}; or pass `skip_bad_images=True`")
            skipped += bad
            bar.update(len(items) + len(bad))
            if not items:
                continue
            index += kept
            for name, value in pipeline.run(items).items():
                out.setdefault(name, []).append(value.cpu().numpy())
    if not index:
        raise UserError(f"{source.name}: no readable images")
    result = Extracted({k: np.concatenate(v) for k, v in out.items()}, np.array(index, dtype=np.int64), skipped)
    if key is not None:
        stored: dict[str, Any] = {**result.arrays, "index": result.index, "skipped": np.array(skipped, dtype=str)}
        atomic_savez(key, stored)
    return result
