"""Decoding images: one decoder for training and classification (JPEG through torchvision's libjpeg-turbo
decoder, about twice as fast as Pillow's, everything else and unusual JPEGs through Pillow), and Pillow's
`convert("RGB")` for the scores of generative models, as their reference tools decode."""

from __future__ import annotations

import contextlib
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


Stored = Encoded | np.ndarray  # an image as a source holds it: encoded bytes, or H x W (x C) uint8 pixels


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """An image file as uint8 C x H x W: 1 channel for gray images, 3 for everything else (RGB, RGBA, CMYK,
    palette; 16-bit images are scaled to 8 bits). Unreadable data raises UserError."""
    return decode_stored(Encoded.read(path))


def decode_image_bytes(data: bytes, name: str) -> Tensor:
    """Encoded image bytes as `read_image` gives them: gray and RGB JPEGs decoded by libjpeg-turbo
    (`torchvision.io.decode_jpeg`), the rest by Pillow."""
    if data[:3] == JPEG_MAGIC and decode_jpeg is not None:
        _check_size(data, name)
        with contextlib.suppress(RuntimeError):  # damaged or unusual (arithmetic coding, ...): Pillow decides
            image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
            if image.shape[0] in (1, 3):
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
        Image.open(io.BytesIO(data)).close()
    except Image.DecompressionBombError as exc:
        raise UserError(f"{name} is too large to decode safely: {reason(exc)}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        pass  # not readable as a header: the decoders decide


def decode_stored(item: Stored) -> Tensor:
    """An image as stored, as uint8 C x H x W: encoded bytes as `decode_image_bytes` decodes them, pixels as
    they are (gray: one channel)."""
    if isinstance(item, Encoded):
        return decode_image_bytes(item.data, item.name)
    pixels = torch.from_numpy(np.ascontiguousarray(item))
    return pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)


def decode_rgb(item: Stored) -> np.ndarray:
    """An image as stored, as H x W x 3 uint8 RGB the way the scoring tools read files: Pillow's decode and
    `convert("RGB")` (gray pixels go to every channel, an alpha channel is dropped); one line if it fails."""
    if not isinstance(item, Encoded):
        pixels = item if item.ndim == 3 else item[:, :, None]
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3])
    try:
        with Image.open(io.BytesIO(item.data)) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot decode image {item.name} ({type(exc).__name__}); fix or remove it") from None


def decode_batch(items: list[Stored | Tensor], device: torch.device) -> list[Tensor]:
    """Images (decoded tensors pass through) as uint8 C x H x W on `device`. On a CUDA device the gray
    and RGB JPEGs of the batch are decoded together there (nvjpeg, `torchvision.io.decode_jpeg`); everything
    else, and everything on a CPU, as `decode_stored` decodes it."""
    out = {i: it.to(device) for i, it in enumerate(items) if isinstance(it, Tensor)}
    jpegs = {i: it for i, it in enumerate(items) if isinstance(it, Encoded) and it.data[:3] == JPEG_MAGIC}
    if device.type == "cuda" and jpegs and decode_jpeg is not None:
        for it in jpegs.values():
            _check_size(it.data, it.name)
        data = [torch.frombuffer(bytearray(it.data), dtype=torch.uint8) for it in jpegs.values()]
        # one undecodable JPEG fails the batch: each is then decoded on the CPU, and named
        with contextlib.suppress(RuntimeError):
            decoded = decode_jpeg(data, mode=ImageReadMode.UNCHANGED, device=device)
            out.update({i: image for i, image in zip(jpegs, decoded, strict=False) if image.shape[0] in (1, 3)})
    return [out[i] if i in out else decode_stored(it).to(device) for i, it in enumerate(items)]  # type: ignore[arg-type]


def image_tensor(im: Image.Image) -> Tensor:
    """A decoded Pillow image as uint8 C x H x W, the way `read_image` gives it."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (Pillow opens 16-bit PNGs as "I"): 0..65535 -> 0..255
        arr = np.asarray(im, dtype=np.float64).clip(0, 65535)
        im = Image.fromarray(np.round(arr / 257.0).astype(np.uint8))
    arr = np.asarray(im.convert("L" if im.mode in ("L", "LA", "1") else "RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
