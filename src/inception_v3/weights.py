"""Public home of the weights: published weights by name, loading from any ecosystem, saving, and the
preprocessing each expects.

`create_model(name, weights=...)` / `inception_v3(weights=...)` build a model with weights (as timm and
torchvision do); `load_pretrained` also returns what was loaded (`LoadReport`); `from_pretrained` is an
alias of `create_model(weights=...)`. `transforms(weights)` is the input pipeline `evaluate` uses for them,
as torchvision's `weights.transforms()` and timm's `create_transform(**resolve_data_config(...))` are.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.transforms import v2

from .api import create_model, inception_v3
from .data.crops import ViewSpec, single_crop_transform
from .interop.loading import LoadReport
from .interop.pretrained import from_pretrained, load_pretrained, resolve_weights, save_pretrained
from .interop.registry import WeightsSpec, fetch, find_weights, get_weights, list_weights, register_weights
from .models.config import get_config
from .training.finetune import freeze_until


def transforms(weights: str | os.PathLike[str], central_fraction: float | None = None) -> v2.Compose:
    """The torchvision v2 transform from a uint8 C x H x W tensor or a PIL image to the input `evaluate` feeds
    these weights for the single central crop: their publisher's resize, crop and interpolation, their input
    size, channels and normalization. Named weights need no download; a file or URL is read for its config."""
    spec = None if Path(str(weights)).exists() else find_weights(str(weights))
    if spec is not None:
        cfg, preprocessing = get_config(spec.preset).replace(mean=spec.mean, std=spec.std), spec.preprocessing()
    else:
        model, report = load_pretrained(weights)
        cfg, preprocessing = model.config, report.preprocessing
    view = ViewSpec.from_dict(preprocessing)
    if central_fraction is not None:
        view = ViewSpec(view.resize, central_fraction, view.interpolation)
    return v2.Compose(
        [v2.PILToTensor(), single_crop_transform(cfg.receptive_field, view, cfg.in_chans, cfg.mean, cfg.std)]
    )


__all__ = [
    "LoadReport",
    "WeightsSpec",
    "create_model",
    "fetch",
    "find_weights",
    "freeze_until",
    "from_pretrained",
    "get_weights",
    "inception_v3",
    "list_weights",
    "load_pretrained",
    "register_weights",
    "resolve_weights",
    "save_pretrained",
    "transforms",
]
