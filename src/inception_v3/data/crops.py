"""The paper's evaluation crops: single central crop (Table 3), 10 crops, and the 144-crop protocol
of GoogLeNet used in Table 4 (4 scales x 3 squares x (4 corners + center + whole square) x 2 mirrors)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

PROTOCOLS = ("single", "10", "144")
# GoogLeNet's shorter sides for a 224 crop, scaled to the model's input size.
_SCALES_224 = (256, 288, 320, 352)


def _resize_shorter(img: Tensor, side: int) -> Tensor:
    h, w = img.shape[-2:]
    scale = side / min(h, w)
    return TF.resize(img, [max(side, round(h * scale)), max(side, round(w * scale))], antialias=True)


def _five_and_whole(square: Tensor, size: int) -> list[Tensor]:
    """4 corners + center crops of `size`, and the whole square resized to `size`."""
    crops = list(TF.five_crop(square, [size, size]))
    return [*crops, TF.resize(square, [size, size], antialias=True)]


def crop_views(img: Tensor, size: int, protocol: str, central_fraction: float = 0.875) -> Tensor:
    """All views of one C x H x W image for `protocol`, as V x C x size x size (same dtype)."""
    if protocol == "single":
        h, w = img.shape[-2:]
        crop = TF.center_crop(img, [max(1, round(h * central_fraction)), max(1, round(w * central_fraction))])
        return TF.resize(crop, [size, size], antialias=True)[None]
    if protocol == "10":
        resized = _resize_shorter(img, round(size / central_fraction))
        views = list(TF.five_crop(resized, [size, size]))
        return torch.stack(views + [TF.horizontal_flip(v) for v in views])
    if protocol == "144":
        views = []
        for s224 in _SCALES_224:
            resized = _resize_shorter(img, round(size * s224 / 224))
            h, w = resized.shape[-2:]
            side = min(h, w)
            # three squares along the longer side: start, center, end
            starts = [0, (max(h, w) - side) // 2, max(h, w) - side]
            for start in starts:
                square = resized[..., start : start + side, :] if h > w else resized[..., :, start : start + side]
                views += _five_and_whole(square, size)
        return torch.stack(views + [TF.horizontal_flip(v) for v in views])
    raise ValueError(f"unknown crop protocol {protocol!r}; valid values: {', '.join(PROTOCOLS)}")
