"""Sample batches as `.npz` files, the way diffusion-model evaluators exchange them (OpenAI's guided-diffusion
evaluation suite and the papers that follow it): `arr_0` N x H x W x 3 uint8, optional `arr_1` labels. Told
apart from `.npz` statistics (`mu`, `sigma`) by their keys."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from .sources import COLUMNS, ArrayImages


def open_npz(spec: str, columns: tuple[str, str] = COLUMNS) -> ArrayImages:
    """A sample batch as a source (labeled when it has `arr_1`); the images are read into memory."""
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"sample batch {spec} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "arr_0" not in keys:
                kind = "statistics (mu, sigma), not images" if {"mu", "sigma"} <= keys else f"no arr_0 ({sorted(keys)})"
                raise UserError(f"{spec} holds {kind}; a sample batch holds arr_0: N x H x W x 3 uint8")
            pixels = data["arr_0"]
            labels = data["arr_1"].astype(np.int64) if "arr_1" in keys else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"{spec} is not a readable .npz file ({type(exc).__name__}): neither statistics (mu, sigma) "
            f"nor a sample batch (arr_0)"
        ) from None
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[3] not in (1, 3):
        raise UserError(f"{spec}: arr_0 must be N x H x W x 3 uint8 images, got {pixels.dtype} {pixels.shape}")
    if labels is not None and labels.shape != (len(pixels),):
        raise UserError(f"{spec}: arr_1 must hold one label per image ({len(pixels)}), got shape {labels.shape}")
    st = path.stat()
    return ArrayImages(pixels, spec, labels, None, f"npz:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
