"""`inception-v3 predict`: top-k labels for image files, using the class names stored with the weights."""

from __future__ import annotations

from typing import Any

from ..data.image_io import expand_inputs, read_image
from ..utils.devices import resolve_device
from .protocols import describe, load_members, predict_probs


def predict(weights: list[str], inputs: list[str], top_k: int = 5, protocol: str = "single",
            central_fraction: float | None = None, device: str = "auto"
            ) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """Top-k (label, probability) per image, and a line per model saying what was loaded; every input
    is read before any weights are loaded or results returned."""
    paths = expand_inputs(inputs)
    images = [read_image(p) for p in paths]
    members, classes = load_members(weights, central_fraction, resolve_device(device))
    results = []
    for path, image in zip(paths, images, strict=True):
        probs = predict_probs(members, [image], protocol)[0]
        top = probs.topk(min(top_k, len(classes)))
        results.append({"image": str(path), "top": [{"label": classes[int(i)], "probability": float(p)}
                                                   for p, i in zip(top.values, top.indices, strict=True)]})  # fmt: skip
    return results, [describe(m) for m in members]
