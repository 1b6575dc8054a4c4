"""`inception-v3 predict`: top-k labels for image files, using the class names stored with the weights."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import IMAGE_SUFFIXES
from .errors import UserError
from .protocols import load_members, predict_probs


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, directories (their images, recursively) and glob patterns, in a stable order."""
    paths: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item)) if any(ch in item for ch in "*?[") else [item]
        if not matches:
            raise UserError(f"no file matches {item}")
        for m in map(Path, matches):
            if m.is_dir():
                paths += sorted(p for p in m.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            elif m.is_file():
                paths.append(m)
            else:
                raise UserError(f"{m} does not exist")
    if not paths:
        raise UserError("no images given")
    return paths


def read_image(path: Path) -> torch.Tensor:
    """Any image Pillow opens (RGB, gray, RGBA, CMYK, palette, 16-bit) as uint8 C x H x W."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray((arr * 255.0 / max(arr.max(), 1.0)).astype(np.uint8))
            im = im.convert("L" if im.mode in ("L", "LA", "1") else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not an image Pillow can read ({type(exc).__name__})") from None
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)


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
