"""`inception-v3 predict`: top-k labels for image files, using the class names stored with the weights."""

from __future__ import annotations

from typing import Any

from ..data.image_io import expand_inputs, read_image
from .protocols import load_members, predict_probs


def predict(weights: list[str], inputs: list[str], top_k: int = 5, protocol: str = "single") -> list[dict[str, Any]]:
    """Top-k (label, probability) per image; every input is read before any result is returned."""
    paths = expand_inputs(inputs)
    images = [read_image(p) for p in paths]
    models, classes, _ = load_members(weights)
    results = []
    for path, image in zip(paths, images, strict=True):
        probs = predict_probs(models, [image], protocol)[0]
        top = probs.topk(min(top_k, len(classes)))
        results.append({"image": str(path), "top": [{"label": classes[int(i)], "probability": float(p)}
                                                   for p, i in zip(top.values, top.indices, strict=True)]})  # fmt: skip
    return results
