"""The Inception preprocessing (TF-slim's, facts.md Section 8).

Train: distorted bounding-box crop (area range, aspect 3/4..4/3), resize, horizontal flip, color
distortion. Eval: central crop of 0.875, resize. Then scale to [0, 1] and normalize with the
mean/std the model's weights expect. `ModelInput` is that last step for evaluation, prediction and
features: uint8 crops (any channel count) to the model's channels and input convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class Preprocessing:
    """The Inception preprocessing settings (all overridable from the command line)."""

    size: int = 299
    crop_area: tuple[float, float] = (0.05, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_distortion: float = 0.5  # 0 turns it off; brightness 32/255 x 2s, contrast/saturation s, hue s/2.5
    eval_crop: float = 0.875
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"


class CentralCrop(v2.Transform):
    """TF's central_crop: keep the central `fraction` of each side."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"central crop fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        h, w = v2.query_size([inpt])
        return TF.center_crop(inpt, [max(1, round(h * self.fraction)), max(1, round(w * self.fraction))])


def _finish(p: Preprocessing, channels: int) -> list[v2.Transform]:
    convert = {3: [v2.RGB()], 1: [v2.Grayscale(1)]}.get(channels, [])
    return [*convert, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(p.mean), list(p.std))]


def train_transform(p: Preprocessing, channels: int) -> v2.Compose:
    """Distorted crop + resize + flip + color distortion, then scale and normalize."""
    mode = InterpolationMode(p.interpolation)
    crop = v2.RandomResizedCrop(p.size, scale=p.crop_area, ratio=p.crop_aspect, interpolation=mode, antialias=True)
    steps: list[v2.Transform] = [crop]
    if p.flip:
        steps.append(v2.RandomHorizontalFlip())
    if p.color_distortion > 0:
        s = p.color_distortion
        jitter = v2.ColorJitter(brightness=min(1.0, 2 * s * 32 / 255), contrast=s, saturation=s, hue=min(0.5, s / 2.5))
        steps.append(jitter)
    return v2.Compose(steps + _finish(p, channels))


def eval_transform(p: Preprocessing, channels: int) -> v2.Compose:
    """Central crop of `eval_crop`, resize, scale and normalize."""
    resize = v2.Resize((p.size, p.size), interpolation=InterpolationMode(p.interpolation), antialias=True)
    return v2.Compose([CentralCrop(p.eval_crop), resize, *_finish(p, channels)])


def model_input(views: Tensor, in_chans: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ... x C x H x W views -> float in the model's channel count (RGBA loses alpha; gray to RGB repeats,
    RGB to gray averages) and normalization, on the views' device."""
    x = views.float() / 255.0
    if x.shape[-3] == 4:
        x = x[..., :3, :, :]
    if x.shape[-3] != in_chans:
        x = x.mean(-3, keepdim=True) if in_chans == 1 else x[..., :1, :, :].expand(*x.shape[:-3], in_chans, -1, -1)
    shape = (len(mean), 1, 1)
    return (x - torch.tensor(mean, device=x.device).view(shape)) / torch.tensor(std, device=x.device).view(shape)


class ModelInput(v2.Transform):
    """`model_input` as a torchvision v2 transform."""

    def __init__(self, in_chans: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.in_chans, self.mean, self.std = in_chans, tuple(mean), tuple(std)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return model_input(inpt, self.in_chans, self.mean, self.std)
