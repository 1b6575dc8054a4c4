"""`evaluate`: checkpoints (or an ensemble of them) under the paper's crop protocols on any labeled source, with
softmax averaging over crops and members, top-1/top-5, per-class accuracy and calibration."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..data.formats import open_source
from ..data.image_io import decode_batch, decode_stored
from ..data.sources import ImageSource, SubsetImages
from ..deploy.fast import fast_inference
from ..deploy.int8 import quantize_int8
from ..errors import UserError
from ..models.inception import Inception3
from ..utils.devices import resolve_device
from ..utils.io import atomic_write_text
from .extraction import Pipeline, as_stored, extract
from .members import Member, load_members, predict_probs
from .metrics import classification_metrics
from .plots import plot_confusion, plot_reliability

log = logging.getLogger(__name__)


def run_evaluation(
    weights: list[str],
    data: Any,
    protocol: str = "single",
    out: str | None = None,
    limit: int | None = None,
    central_fraction: float | None = None,
    mode: str = "fp32",
    calibration: Any = None,
    device: str = "auto",
    workers: int = 2,
    show_progress: bool = True,
    columns: tuple[str, str] = ("image", "label"),
) -> dict[str, Any]:
    """Evaluate `weights` (one, or an ensemble) on `data` (a labeled source: a folder with one sub-folder per
    class, `wds:...`, `hf:...`, `fashion-mnist:test`, a labeled .npz batch, ...; `data.formats.open_source`) and,
    with `out`, write metrics.json, confusion.png and reliability.png atomically. The data's classes are matched
    to the weights' by name.

    `mode`: fp32 (as trained), fast (BN folded, channels_last, bf16 where supported) or int8 (CPU; calibrated on
    the first 256 images of `calibration`, by default Fashion-MNIST's training split for Fashion-MNIST data);
    `device`: cpu, cuda or auto."""
    if out and Path(out).exists() and any(Path(out).iterdir()):
        raise UserError(f"{out} is not empty; choose another folder")
    where = resolve_device("cpu" if mode == "int8" and device == "auto" else device)  # int8: x86 CPU kernels
    if mode == "int8" and where.type != "cpu":
        raise UserError("`mode` int8 runs on x86 CPUs only; use `device='cpu'`, or `mode` fast on a GPU")
    members, classes = load_members(weights, central_fraction, where)
    source, labels = known_images(open_source(data, columns=columns), classes, limit)
    sources = [m.describe() for m in members]
    if mode == "fast":
        members = [replace(m, model=fast_inference(cast(Inception3, m.model), where)) for m in members]
    elif mode == "int8":
        fm_train = source.name.rsplit(":", 1)[0] + ":train"  # the training split of the Fashion-MNIST data
        calib = calibration or (fm_train if source.name.startswith("fashion-mnist:") else None)
        if calib is None:
            raise UserError("`mode` int8 needs `calibration`: training images to calibrate on (a few hundred)")
        calib_source = open_source(calib, columns=columns)
        members = [
            replace(m, model=quantize_int8(cast(Inception3, m.model), calibration_batches(m, calib_source)))
            for m in members
        ]
    got = extract(
        source,
        probabilities(members, protocol, where),
        batch_size=32 if protocol == "single" else 4,
        workers=workers,
        progress=f"evaluate ({protocol} crop)" if show_progress else None,
    )
    probs, known = torch.from_numpy(got.arrays["probs"]), torch.from_numpy(labels[got.index])
    metrics = classification_metrics(probs, known, classes)
    result = {
        "checkpoints": weights,
        "weights": sources,
        "data": source.name,
        "protocol": protocol,
        "mode": mode,
        "device": where.type,
        "members": len(members),
        **metrics,
    }
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        plot_confusion(metrics["confusion"], classes, folder / "confusion.png", f"Confusion matrix ({protocol})")
        plot_reliability(metrics["calibration"], metrics["ece"], folder / "reliability.png")
        atomic_write_text(folder / "metrics.json", json.dumps(result, indent=2))
    return result


def known_images(source: ImageSource, classes: list[str], limit: int | None) -> tuple[ImageSource, np.ndarray]:
    """The images of `source` to evaluate (the first `limit`) and their labels in the weights' class order. The
    data's classes are matched to the weights' by name and must all be known to the weights, except for weights
    trained on some of the data's classes: those are evaluated on the images of their classes (with a note)."""
    labels, names = source.require_labels(), source.class_names()
    order = np.array([classes.index(n) if n in classes else -1 for n in names], dtype=np.int64)
    mapped = order[labels]
    unknown = sorted({names[y] for y in np.unique(labels) if order[y] < 0})
    if unknown and not set(classes) <= set(names):
        raise UserError(
            f"{source.name} has classes the weights do not know: {', '.join(unknown[:5])} (the weights "
            f"know {len(classes)}: {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})"
        )
    keep = np.flatnonzero(mapped >= 0)
    if unknown:
        log.info(
            f"note: the weights know {len(classes)} of the {len(names)} classes of {source.name}: the "
            f"{len(labels) - len(keep)} images of the others are left out"
        )
    keep = keep[:limit]
    return SubsetImages(source, keep), mapped[keep]


def probabilities(members: list[Member], protocol: str, device: torch.device) -> Pipeline:
    """Class probabilities averaged over crops and members: images decoded in workers (on a GPU, JPEGs stay
    encoded for nvjpeg), cropped and run on `device`."""
    prepare = as_stored if device.type == "cuda" else decode_stored
    return Pipeline(prepare, partial(_probs, members, protocol, device))


def _probs(members: list[Member], protocol: str, device: torch.device, items: list[Any]) -> dict[str, Tensor]:
    return {"probs": predict_probs(members, decode_batch(items, device), protocol)}


def calibration_batches(member: Member, source: ImageSource, count: int = 256) -> list[Tensor]:
    """Model inputs for int8 calibration: the first `count` images of `source`, single crops as evaluated."""
    transform = member.transform()
    images = [transform(decode_stored(source.stored(i))) for i in range(min(count, len(source)))]
    if not images:
        raise UserError(f"no images in {source.name} to calibrate the int8 model on")
    return list(torch.stack(images).split(32))


def format_result(r: dict[str, Any]) -> str:
    lines = [
        *(f"weights: {s}" for s in r["weights"]),
        f"{r['protocol']} crop, {r['members']} model(s), {r['mode']}, {r['n']:,} images of {r['data']}",
        f"top-1 {r['top1']:.2%} (error {r['top1_error']:.2%})   top-5 {r['top5']:.2%} "
        f"(error {r['top5_error']:.2%})   ECE {r['ece']:.4f}",
        "per class:",
    ]
    lines += [f"  {c:<20}{a:.2%}" for c, a in r["per_class"].items()]
    return "\n".join(lines)
