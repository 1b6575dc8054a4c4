"""`predict`: top-k labels of any source's images (files, folders, globs, shards, ...), with the class names
stored with the weights."""

from __future__ import annotations

from typing import Any

import torch

from ..data.formats import open_images
from ..utils.devices import resolve_device
from .evaluate import probabilities
from .extraction import extract
from .members import load_members


def predict(
    weights: list[str],
    images: list[str] | Any,
    top_k: int = 5,
    protocol: str = "single",
    central_fraction: float | None = None,
    device: str = "auto",
    workers: int = 0,
    columns: tuple[str, str] = ("image", "label"),
) -> tuple[list[dict[str, Any]], list[str]]:
    """Top-k (label, probability) per image, and a line per model saying what was loaded. `images`: files,
    folders and globs, or one source (`data.formats.open_images`)."""
    source = open_images(images, columns)
    where = resolve_device(device)
    members, classes = load_members(weights, central_fraction, where)
    got = extract(source, probabilities(members, protocol, where), batch_size=32, workers=workers, progress=None)
    values, indices = torch.from_numpy(got.arrays["probs"]).topk(min(top_k, len(classes)))
    results = []
    for i, probs, top in zip(got.index.tolist(), values.tolist(), indices.tolist(), strict=True):
        labels = [{"label": classes[k], "probability": p} for p, k in zip(probs, top, strict=True)]
        results.append({"image": source.item_name(i), "top": labels})
    return results, [m.describe() for m in members]
