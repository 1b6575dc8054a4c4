"""Reading images: one decoder for every format (JPEG through torchvision's libjpeg-turbo decoder, about
twice as fast as Pillow's, everything else and unusual JPEGs through Pillow), and expanding the file, folder
and glob arguments of the commands into image paths."""

from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

try:  # deprecated since torchvision 0.29 in favour of TorchCodec; Pillow decodes everything when it is gone
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # pragma: no cover - a future torchvision
    decode_jpeg = None

from ..errors import UserError, reason

JPEG_MAGIC = b"\xff\xd8\xff"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class BadSample:
    """An unreadable image: where it is (a file, or a shard and key) and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Encoded:
    """An image's encoded bytes (a file's, a shard member's, a dataset row's) and how to name it."""

    data: bytes
    name: str

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Encoded:
        try:
            return cls(Path(path).read_bytes(), str(path))
        except OSError as exc:
            raise UserError(f"cannot read {path} ({type(exc).__name__})") from None


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """An image file as uint8 C x H x W: 1 channel for gray images, 3 for everything else (RGB, RGBA, CMYK,
    palette; 16-bit images are scaled to 8 bits). Unreadable data raises UserError."""
    encoded = Encoded.read(path)
    return decode_image_bytes(encoded.data, encoded.name)


def decode_image_bytes(data: bytes, name: str) -> Tensor:
    """Encoded image bytes as `read_image` gives them: gray and RGB JPEGs decoded by libjpeg-turbo
    (`torchvision.io.decode_jpeg`), the rest by Pillow."""
    if data[:3] == JPEG_MAGIC and decode_jpeg is not None:
        _check_size(data, name)
        try:
            image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
        except RuntimeError:  # damaged or unusual (arithmetic coding, ...): Pillow decides
            image = None
        if image is not None and image.shape[0] in (1, 3):
            return image
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return image_tensor(im)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{name} is not an image Pillow can read ({type(exc).__name__})") from None


def _check_size(data: bytes, name: str) -> None:
    """Pillow's decompression-bomb limit, from the header alone (libjpeg-turbo and nvjpeg have none)."""
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except Image.DecompressionBombError as exc:
        raise UserError(f"{name} is too large to decode safely: {reason(exc)}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        pass  # not readable as a header: the decoders decide


def decode_batch(items: list[Encoded | Tensor], device: torch.device) -> list[Tensor]:
    """Images (already decoded tensors pass through) as uint8 C x H x W on `device`. On a CUDA device the gray
    and RGB JPEGs of the batch are decoded together there (nvjpeg, `torchvision.io.decode_jpeg`); everything
    else, and everything on a CPU, as `decode_image_bytes` decodes it."""
    encoded = {i: it for i, it in enumerate(items) if isinstance(it, Encoded)}
    out = {i: it.to(device) for i, it in enumerate(items) if not isinstance(it, Encoded)}
    jpegs = [i for i, it in encoded.items() if it.data[:3] == JPEG_MAGIC]
    if device.type == "cuda" and jpegs and decode_jpeg is not None:
        for i in jpegs:
            _check_size(encoded[i].data, encoded[i].name)
        data = [torch.frombuffer(bytearray(encoded[i].data), dtype=torch.uint8) for i in jpegs]
        try:
            decoded = decode_jpeg(data, mode=ImageReadMode.UNCHANGED, device=device)
        except RuntimeError:  # one undecodable JPEG fails the batch: each is then decoded on the CPU, and named
            decoded = []
        out.update({i: image for i, image in zip(jpegs, decoded, strict=False) if image.shape[0] in (1, 3)})
    for i, it in encoded.items():
        if i not in out:
            out[i] = decode_image_bytes(it.data, it.name).to(device)
    return [out[i] for i in range(len(items))]


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
