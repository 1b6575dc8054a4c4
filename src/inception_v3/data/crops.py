"""The paper's evaluation crops: single central crop (Table 3), 10 crops, and the 144-crop protocol
of GoogLeNet used in Table 4 (4 scales x 3 squares x (4 corners + center + whole square) x 2 mirrors).

How the single crop is taken depends on the weights (`ViewSpec`): TF-slim takes the central fraction
and resizes it to the input size ("squash"); torchvision and timm resize the shorter side to
size / fraction and cut the center ("shorter"); each with its own interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from .transforms import ModelInput

PROTOCOLS = ("single", "10", "144")
RESIZE_MODES = ("squash", "shorter")
# GoogLeNet's shorter sides for a 224 crop, scaled to the model's input size.
_SCALES_224 = (256, 288, 320, 352)


@dataclass(frozen=True)
class ViewSpec:
    """How a single crop is cut and resized: see the module docstring."""

    resize: str = "squash"
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"invalid resize mode {self.resize!r}; valid values: {', '.join(RESIZE_MODES)}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop fraction must be in (0, 1], got {self.crop_fraction}")
        InterpolationMode(self.interpolation)  # raises for an unknown name

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViewSpec:
        return cls(**{k: d[k] for k in ("resize", "crop_fraction", "interpolation") if k in d})


def _resize(img: Tensor, size: list[int], interpolation: str) -> Tensor:
    return TF.resize(img, size, interpolation=InterpolationMode(interpolation), antialias=True)


def _resize_shorter(img: Tensor, side: int, interpolation: str) -> Tensor:
    h, w = img.shape[-2:]
    scale = side / min(h, w)
    return _resize(img, [max(side, round(h * scale)), max(side, round(w * scale))], interpolation)


def single_view(img: Tensor, size: int, view: ViewSpec) -> Tensor:
    """The one central view of a C x H x W image, as C x size x size."""
    if view.resize == "shorter":
        return TF.center_crop(_resize_shorter(img, round(size / view.crop_fraction), view.interpolation), [size, size])
    h, w = img.shape[-2:]
    crop = TF.center_crop(img, [max(1, round(h * view.crop_fraction)), max(1, round(w * view.crop_fraction))])
    return _resize(crop, [size, size], view.interpolation)


class SingleCrop(v2.Transform):
    """`single_view` as a torchvision v2 transform."""

    def __init__(self, size: int, view: ViewSpec) -> None:
        super().__init__()
        self.size, self.view = size, view

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return single_view(inpt, self.size, self.view)


def single_crop_transform(
    size: int, view: ViewSpec, in_chans: int, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """A uint8 C x H x W image -> the model input `evaluate` feeds for the single central crop."""
    return v2.Compose([SingleCrop(size, view), ModelInput(in_chans, mean, std)])


def crop_views(img: Tensor, size: int, protocol: str, view: ViewSpec | None = None) -> Tensor:
    """All views of one C x H x W image for `protocol`, as V x C x size x size (same dtype)."""
    view = view or ViewSpec()
    if protocol == "single":
        return single_view(img, size, view)[None]
    if protocol == "10":
        resized = _resize_shorter(img, round(size / view.crop_fraction), view.interpolation)
        views = list(TF.five_crop(resized, [size, size]))
        return torch.stack(views + [TF.horizontal_flip(v) for v in views])
    if protocol == "144":
        views = []
        for s224 in _SCALES_224:
            resized = _resize_shorter(img, round(size * s224 / 224), view.interpolation)
            h, w = resized.shape[-2:]
            side, extra = min(h, w), abs(h - w)
            for start in (0, extra // 2, extra):  # three squares along the longer side: start, center, end
                square = resized[..., start : start + side, :] if h > w else resized[..., :, start : start + side]
                views += [*TF.five_crop(square, [size, size]), _resize(square, [size, size], view.interpolation)]
        return torch.stack(views + [TF.horizontal_flip(v) for v in views])
    raise ValueError(f"unknown crop protocol {protocol!r}; valid values: {', '.join(PROTOCOLS)}")
