"""`inception-v3 evaluate`: checkpoints (or an ensemble of them) under the paper's crop protocols,
with softmax averaging over crops and members, top-1/top-5, per-class accuracy and calibration."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torchvision.datasets import ImageFolder

from ..data.crops import ViewSpec, crop_views, single_view
from ..data.datasets import indexed_images, stored_image
from ..data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist
from ..data.image_io import Encoded, decode_batch, is_image_file, read_image
from ..deploy.fast import fast_inference
from ..deploy.int8 import quantize_int8
from ..errors import UserError
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.config import InceptionConfig
from ..models.inception import Inception3
from ..utils.devices import model_device, resolve_device
from ..utils.io import atomic_write_text
from ..utils.progress import progress_bar
from .metrics import classification_metrics
from .plots import plot_confusion, plot_reliability


@dataclass
class Member:
    """One model of an evaluation (an ensemble has several): the network, how its weights expect a single
    crop to be taken, and what was loaded."""

    model: nn.Module
    view: ViewSpec
    report: LoadReport

    @property
    def config(self) -> InceptionConfig:
        return self.model.config  # type: ignore[return-value]


def load_members(paths: list[str], central_fraction: float | None = None, device: torch.device | str = "cpu"
                 ) -> tuple[list[Member], list[str]]:  # fmt: skip
    """The ensemble's models (eval mode, on `device`) with their preprocessing, and their shared class names.
    `central_fraction` overrides the crop fraction the weights come with."""
    members: list[Member] = []
    classes: list[str] | None = None
    for path in paths:
        model, report = load_pretrained(path)
        names = report.classes or [str(i) for i in range(model.config.num_classes)]
        if classes is not None and names != classes:
            raise UserError(f"{path} predicts other classes than {paths[0]} ({len(names)} vs {len(classes)}); "
                            f"ensemble members must share their classes")  # fmt: skip
        classes = names
        view = ViewSpec.from_dict(report.preprocessing)
        if central_fraction is not None:
            view = replace(view, crop_fraction=central_fraction)
        members.append(Member(model.eval().to(device), view, report))
    assert classes is not None
    return members, classes


def describe(member: Member) -> str:
    """One line: which weights, what was loaded, how images are cropped."""
    v = member.view
    crop = f"{v.resize} crop {v.crop_fraction:.3f}, {v.interpolation}"
    return f"{member.report.weights} ({member.report.source}; {member.report.summary()}; {crop})"


def evaluation_set(
    dataset: str,
    data: str | None,
    classes: list[str],
    limit: int | None,
    split: str | None = None,
    columns: tuple[str, str] = ("image", "label"),
) -> list[tuple[Callable[[], Encoded | Tensor], int]]:
    """(image reader, label) pairs of the evaluation set, labels in the weights' class order; checked
    before anything runs: the weights must know the data's classes (by name). A reader gives the image's
    encoded bytes (decoded in batches by `decode_batch`) or, for Fashion-MNIST, its pixels. `split`: the
    shard pattern (wds) or the split name (hf, default validation); `columns`: hf's image and label columns."""
    if dataset in ("wds", "hf"):
        return _indexed_set(dataset, data, split, classes, limit, columns)
    if dataset == "fashion-mnist":
        images, labels = load_fashion_mnist(data or FASHION_MNIST_DIR, "test")
        foreign = [c for c in classes if c not in FASHION_MNIST_CLASSES]
        if foreign:
            raise UserError(f"the weights' classes are not Fashion-MNIST's (first: {foreign[0]!r}); evaluate them "
                            f"on their own data with --data DIR")  # fmt: skip
        wanted = {FASHION_MNIST_CLASSES.index(c): i for i, c in enumerate(classes)}  # a subset works too
        pairs = [(i, wanted[int(y)]) for i, y in enumerate(labels.tolist()) if int(y) in wanted]
        pairs = pairs if limit is None else pairs[:limit]
        return [(partial(_one, images, i), y) for i, y in pairs]
    if not data or not Path(data).is_dir():
        raise UserError(f"evaluation folder {data} does not exist (expected one sub-folder per class)")
    folder = ImageFolder(data, loader=read_image, is_valid_file=is_image_file, allow_empty=True)
    _check_known(data, set(folder.classes), classes)
    samples = folder.samples if limit is None else folder.samples[:limit]
    if not samples:
        raise UserError(f"no images found in {data}")
    return [(partial(Encoded.read, path), classes.index(folder.classes[idx])) for path, idx in samples]


def _indexed_set(dataset: str, data: str | None, split: str | None, classes: list[str], limit: int | None,
                 columns: tuple[str, str]) -> list[tuple[Callable[[], Encoded | Tensor], int]]:  # fmt: skip
    """WebDataset shards or a Hugging Face dataset split, read by index (images untransformed)."""
    ds, names = indexed_images(dataset, data, split, "--split", columns)
    _check_known(data, {names[y] for _, y in ds.samples}, classes)
    count = len(ds) if limit is None else min(limit, len(ds))
    return [(partial(stored_image, ds, i), classes.index(names[ds.samples[i][1]])) for i in range(count)]


def _check_known(data: str | None, found: set[str], classes: list[str]) -> None:
    """The data's classes must all be the weights' (by name)."""
    unknown = sorted(found - set(classes))
    if unknown:
        raise UserError(f"{data} has classes the weights do not know: {', '.join(unknown[:5])} (the weights know "
                        f"{len(classes)}: {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})")  # fmt: skip


def _one(images: Tensor, i: int) -> Tensor:
    return images[i][None]


def to_model_input(views: Tensor, model: nn.Module) -> Tensor:
    """uint8 views -> float, the model's channel count, and its normalization (on the views' device)."""
    cfg: InceptionConfig = model.config  # type: ignore[assignment]
    x = views.float() / 255.0
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.shape[1] != cfg.in_chans:
        x = x.mean(1, keepdim=True) if cfg.in_chans == 1 else x[:, :1].expand(-1, cfg.in_chans, -1, -1)
    mean = torch.tensor(cfg.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def predict_probs(members: list[Member], images: list[Tensor], protocol: str) -> Tensor:
    """Class probabilities (N x K, on the CPU) for N images: softmax averaged over crops, then over ensemble
    members. The crops are cut where the images are (the CPU, or the GPU that decoded them) and normalized on
    each member's device."""
    images = same_channels(images)
    out = []
    for m in members:
        size, device = m.config.receptive_field, model_device(m.model)
        views = torch.stack([crop_views(im, size, protocol, m.view) for im in images])
        flat = views.flatten(0, 1)  # (N * crops) x C x H x W
        probs = torch.cat([m.model(to_model_input(chunk.to(device), m.model)).softmax(1).cpu()
                           for chunk in flat.split(128)])  # fmt: skip
        out.append(probs.view(len(images), -1, probs.shape[1]).mean(1))
    return torch.stack(out).mean(0)


def _chunks(items: Iterator[tuple[Any, int]], size: int) -> Iterator[list[tuple[Any, int]]]:
    chunk: list[tuple[Any, int]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def calibration_batches(member: Member, dataset: str, data: str | None, calibration: str | None,
                        count: int = 256) -> list[Tensor]:  # fmt: skip
    """Model inputs for int8 calibration: Fashion-MNIST's training split, or the images of a folder."""
    if dataset == "fashion-mnist" and calibration is None:
        images = list(load_fashion_mnist(data or FASHION_MNIST_DIR, "train")[0][:count, None])
    else:
        if not calibration or not Path(calibration).is_dir():
            raise UserError("--mode int8 needs --calibration DIR: a folder of training images (a few hundred)")
        files = sorted(p for p in Path(calibration).rglob("*") if p.is_file() and is_image_file(str(p)))[:count]
        if not files:
            raise UserError(f"no images found in {calibration} for int8 calibration")
        images = [read_image(p) for p in files]
    return list(single_crop_inputs(member.model, images, member.view).split(32))


def single_crop_inputs(model: nn.Module, images: list[Tensor], view: ViewSpec) -> Tensor:
    """N model inputs: each uint8 C x H x W image's single central crop, resized and normalized as evaluated."""
    cfg: InceptionConfig = model.config  # type: ignore[assignment]
    size = cfg.receptive_field
    return to_model_input(torch.stack([single_view(im, size, view) for im in same_channels(images)]), model)


def same_channels(images: list[Tensor]) -> list[Tensor]:
    """Gray, RGB and RGBA images together: RGB for all (exact for gray); one kind: unchanged."""
    if len({im.shape[0] for im in images}) > 1:
        return [im.expand(3, -1, -1) if im.shape[0] == 1 else im[:3] for im in images]
    return images


def run_evaluation(paths: list[str], dataset: str, data: str | None, protocol: str, out: str | None,
                   limit: int | None = None, show_progress: bool = True, central_fraction: float | None = None,
                   mode: str = "fp32", calibration: str | None = None, device: str = "auto",
                   split: str | None = None, columns: tuple[str, str] = ("image", "label")
                   ) -> dict[str, Any]:  # fmt: skip
    """Evaluate and (with `out`) write metrics.json, confusion.png and reliability.png atomically.

    `mode`: fp32 (as trained), fast (BN folded, channels_last, bf16 where supported) or int8 (CPU);
    `device`: cpu, cuda or auto."""
    if out and Path(out).exists() and any(Path(out).iterdir()):
        raise UserError(f"{out} is not empty; choose another folder")
    where = resolve_device("cpu" if mode == "int8" and device == "auto" else device)  # int8: x86 CPU kernels
    if mode == "int8" and where.type != "cpu":
        raise UserError("--mode int8 runs on x86 CPUs only; use --device cpu, or --mode fast on a GPU")
    members, classes = load_members(paths, central_fraction, where)
    samples = evaluation_set(dataset, data, classes, limit, split, columns)
    sources = [describe(m) for m in members]
    if mode == "fast":
        members = [replace(m, model=fast_inference(cast(Inception3, m.model), where)) for m in members]
    elif mode == "int8":
        members = [replace(m, model=quantize_int8(cast(Inception3, m.model), calibration_batches(m, dataset, data,
                                                                                            calibration)))
                   for m in members]  # fmt: skip
    probs, labels = [], []
    per_batch = 32 if protocol == "single" else 4  # images per forward pass (crops multiply it)
    bar = progress_bar(total=len(samples), desc=f"evaluate ({protocol} crop)", unit="img", disable=not show_progress)
    for chunk in _chunks(iter((read(), label) for read, label in samples), per_batch):
        probs.append(predict_probs(members, decode_batch([image for image, _ in chunk], where), protocol))
        labels += [label for _, label in chunk]
        bar.update(len(chunk))
    bar.close()
    metrics = classification_metrics(torch.cat(probs), torch.tensor(labels), classes)
    result = {"checkpoints": paths, "weights": sources, "protocol": protocol, "mode": mode, "device": where.type,
              "members": len(members), **metrics}  # fmt: skip
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        plot_confusion(metrics["confusion"], classes, folder / "confusion.png", f"Confusion matrix ({protocol})")
        plot_reliability(metrics["calibration"], metrics["ece"], folder / "reliability.png")
        atomic_write_text(folder / "metrics.json", json.dumps(result, indent=2))
    return result


def format_result(r: dict[str, Any]) -> str:
    lines = [*(f"weights: {s}" for s in r["weights"]),
             f"{r['protocol']} crop, {r['members']} model(s), {r['mode']}, {r['n']:,} images",
             f"top-1 {r['top1']:.2%} (error {r['top1_error']:.2%})   top-5 {r['top5']:.2%} "
             f"(error {r['top5_error']:.2%})   ECE {r['ece']:.4f}", "per class:"]  # fmt: skip
    lines += [f"  {c:<20}{a:.2%}" for c, a in r["per_class"].items()]
    return "\n".join(lines)
