"""`features`: pooled 2048-d features (and the FID tools' 64/192/768 taps) of any source, with the weights'
own single-crop preprocessing, through the network with batch norm folded and channels_last; returned as
arrays, and written atomically as .npz or .safetensors with the image names (and labels and class names when
the source has them)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from ..data.formats import open_images
from ..data.image_io import Stored, decode_batch, decode_stored
from ..deploy.fusion import fold_batchnorm
from ..errors import UserError
from ..models.inception import FEATURE_TAPS, pooled_taps
from ..utils.devices import resolve_device
from ..utils.io import atomic_savez, atomic_write
from .extraction import Pipeline, as_stored, extract
from .members import load_members

FORMATS = (".npz", ".safetensors")


@dataclass
class Features:
    """Arrays by name (`features`: N x 2048, `taps_K`: N x K, `labels`), the image names, the class names."""

    arrays: dict[str, np.ndarray]
    names: list[str]
    classes: list[str] | None
    weights: str  # what was loaded, in one line
    preprocessing: dict[str, Any]  # the single crop the weights expect


def extract_features(
    weights: str,
    images: Any,
    taps: Sequence[int] = (),
    batch_size: int = 32,
    central_fraction: float | None = None,
    device: str = "auto",
    workers: int = 2,
    show_progress: bool = True,
    columns: tuple[str, str] = ("image", "label"),
) -> Features:
    """Pooled features of every image of `images` (a source: `data.formats.open_source`), on `device` (cpu, cuda
    or auto; JPEGs are decoded on a GPU there)."""
    unknown = [t for t in taps if t not in FEATURE_TAPS]
    if unknown:
        raise UserError(f"invalid feature tap {unknown[0]}; valid values: {', '.join(map(str, FEATURE_TAPS))}")
    source = open_images(images, columns)
    where = resolve_device(device)
    (member,), _ = load_members([weights], central_fraction, where)
    net = fold_batchnorm(member.model).eval().to(memory_format=torch.channels_last)  # type: ignore[arg-type]
    wanted = [2048, *(t for t in taps if t != 2048)]
    on_device = where.type == "cuda"
    prepare = as_stored if on_device else partial(_prepared, member.transform())
    pipeline = Pipeline(prepare, partial(_taps, net, member.transform(), wanted, where, on_device))
    got = extract(
        source, pipeline, batch_size=batch_size, workers=workers, progress="features" if show_progress else None
    )
    arrays = {("features" if t == 2048 else f"taps_{t}"): got.arrays[str(t)] for t in wanted}
    if source.labeled:  # -1: that image has no label
        arrays["labels"] = np.asarray(source.labels)[got.index].astype(np.int64)
    names = [source.item_name(int(i)) for i in got.index]
    classes = source.class_names() if source.labeled else None
    return Features(arrays, names, classes, member.describe(), dict(member.view.__dict__))


def _prepared(transform: v2.Compose, item: Stored) -> Tensor:
    return transform(decode_stored(item))


def _taps(
    net: nn.Module, transform: v2.Compose, taps: list[int], device: torch.device, on_device: bool, items: list[Any]
) -> dict[str, Tensor]:
    x = torch.stack([transform(im) for im in decode_batch(items, device)] if on_device else items).to(device)
    pooled = pooled_taps(net, x.contiguous(memory_format=torch.channels_last), taps)  # type: ignore[arg-type]
    return {str(t): v.float() for t, v in pooled.items()}


def write_features(features: Features, output: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The arrays, the image names (`files`) and the class names, as .npz or .safetensors (metadata), atomically."""
    out = check_output(output, overwrite)
    if out.suffix == ".npz":
        extra = {} if features.classes is None else {"classes": np.array(features.classes)}
        arrays: dict[str, Any] = {"files": np.array(features.names), **extra, **features.arrays}
        atomic_savez(out, arrays)
        return out
    from safetensors.torch import save_file

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in features.arrays.items()}
    meta = {
        "files": json.dumps(features.names),
        "weights": features.weights,
        "preprocessing": json.dumps(features.preprocessing),
    }
    if features.classes is not None:
        meta["classes"] = json.dumps(features.classes)
    atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return out


def check_output(output: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an output that cannot be written (before any work, and again when writing)."""
    out = Path(output)
    if out.suffix not in FORMATS:
        raise UserError(f"`output` must end in {' or '.join(FORMATS)}, got {out.name!r}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; choose another path or pass `overwrite=True`")
    return out
