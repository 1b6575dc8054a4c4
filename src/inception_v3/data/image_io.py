"""Reading images: the one decoder (Pillow: every format and mode it opens), and expanding the file,
folder and glob arguments of the commands into image paths."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class BadSample:
    """An unreadable image: where it is (a file, or a shard and key) and why."""

    path: str
    reason: str


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str] | BinaryIO, name: str | None = None) -> Tensor:
    """An image (a file, or a file object named `name`) as uint8 C x H x W: 1 channel for gray images, 3 for
    everything else (RGB, RGBA, CMYK, palette; 16-bit images are scaled to 8 bits). Unreadable data raises
    UserError."""
    try:
        with Image.open(path) as im:
            im.load()
            return image_tensor(im)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{name or path} is not an image Pillow can read ({type(exc).__name__})") from None


def image_tensor(im: Image.Image) -> Tensor:
    """A decoded Pillow image as uint8 C x H x W, the way `read_image` gives it."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray((arr * 255.0 / max(arr.max(), 1.0)).astype(np.uint8))
    arr = np.asarray(im.convert("L" if im.mode in ("L", "LA", "1") else "RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, recursively) and glob patterns, in a stable order."""
    paths: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item)) if any(ch in item for ch in "*?[") else [item]
        if not matches:
            raise UserError(f"no file matches {item}")
        for m in map(Path, matches):
            if m.is_dir():
                paths += sorted(p for p in m.rglob("*") if p.is_file() and is_image_file(p))
            elif m.is_file():
                paths.append(m)
            else:
                raise UserError(f"{m} does not exist")
    if not paths:
        raise UserError(f"no images found in {' '.join(inputs)}")
    return paths
