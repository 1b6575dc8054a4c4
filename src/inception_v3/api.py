"""The model builders users call, as timm's and torchvision's: a preset, optionally with weights by name, URL
or path: `inception_v3(weights="IMAGENET1K_V1")`, `create_model("inception_v3", weights="tf_in1k")`,
`create_model("inception_v3_79", num_classes=10)` (`weights.py` has the rest of the weights API)."""

from __future__ import annotations

import os
from typing import Any

from .interop.pretrained import load_pretrained
from .models.inception import Inception3, build_preset


def create_model(
    preset: str = "inception_v3", weights: str | os.PathLike[str] | None = None, **overrides: Any
) -> Inception3:
    """A preset (`inception-v3 models`) with config overrides; with `weights`, those weights loaded
    strictly (`num_classes` then replaces both classifiers)."""
    if weights is None:
        return build_preset(preset, **overrides)
    return load_pretrained(weights, preset=preset, **overrides)[0]


def inception_v3(weights: str | os.PathLike[str] | None = None, **overrides: Any) -> Inception3:
    """The released Inception-v3 (27,161,264 parameters with the aux head at 1000 classes)."""
    return create_model("inception_v3", weights=weights, **overrides)
