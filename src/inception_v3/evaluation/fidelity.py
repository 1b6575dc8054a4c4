"""`inception-v3 fidelity`: Inception Score, FID, KID and precision/recall of generated images, with the
vocabulary, defaults and numbers of torch-fidelity, clean-fid or pytorch-fid (`convention`).

Images are decoded and resized in DataLoader workers as the chosen tool does it, then go through the FID
network (pytorch-fid's 2015 graph) with batch norm folded into the convolutions and channels_last, in fp32.
Features are cached on disk per (input, convention, weights, taps). Precision/recall use the Inception
pool3 features (torch-fidelity's `feature_extractor="inception-v3-compat"`; its own default is VGG-16).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..deploy.fusion import fold_batchnorm
from ..errors import UserError
from ..models.inception import Inception3
from ..utils.devices import resolve_device
from ..utils.io import atomic_write, cache_root
from ..utils.progress import progress_bar
from .conventions import Convention, get_convention
from .features import pooled_taps
from .fid import FID_WEIGHTS, load_fid_network, read_stats
from .image_sources import ImageSource, open_source
from .scores import fid_from_statistics, inception_score, kernel_inception_distance, precision_recall, statistics

LOGITS = "logits_unbiased"  # the IS feature: pool3 x fc weights, without the bias (torch-fidelity's)


@dataclass
class Settings:
    """The options of a scoring run; the defaults are torch-fidelity's."""

    isc: bool = False
    fid: bool = False
    kid: bool = False
    prc: bool = False
    convention: str = "torch-fidelity"
    weights: str = FID_WEIGHTS
    isc_splits: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    kid_degree: int = 3
    prc_neighborhood: int = 3
    samples_shuffle: bool = True
    seed: int = 2020
    dims: int = 2048
    batch_size: int = 64
    workers: int = 2
    device: str = "auto"
    cache: bool = True
    skip_bad_images: bool = False
    num_samples: int | None = None
    show_progress: bool = True


def cache_dir() -> Path:
    """Where features are cached: $INCEPTION_V3_CACHE/features, else ~/.cache/inception-v3/features."""
    return cache_root() / "features"


class _Prepared(Dataset):
    """Image i of a source, decoded (and, unless the resize runs on the GPU, prepared by the convention) in a
    worker; an image that does not decode comes back as its error line, for the main process to decide."""

    def __init__(self, source: ImageSource, convention: Convention, prepare: bool) -> None:
        self.source, self.convention, self.prepare = source, convention, prepare

    def __len__(self) -> int:
        return self.source.count

    def __getitem__(self, i: int) -> tuple[Tensor | None, str | None]:
        try:
            image = torch.from_numpy(self.source.read(i))
        except UserError as exc:
            return None, str(exc)
        return (self.convention.prepare(image) if self.prepare else image), None


def _collate(items: list[tuple[Tensor | None, str | None]]) -> tuple[list[Tensor], list[str]]:
    return [x for x, _ in items if x is not None], [bad for _, bad in items if bad is not None]


def _stream_batches(source: ImageSource, batch_size: int) -> Iterator[tuple[list[Tensor], list[str]]]:
    """Batches of a streamed source's images (uint8 H x W x 3 tensors), as they come."""
    assert source.stream is not None
    batch: list[Tensor] = []
    for image in source.stream():
        batch.append(torch.from_numpy(image))
        if len(batch) == batch_size:
            yield batch, []
            batch = []
    if batch:
        yield batch, []


def feature_network(weights: str, device: torch.device) -> tuple[Inception3, str]:
    """The FID network with batch norm folded and channels_last (fp32: the numbers must not move), and a
    fingerprint of the weights it was loaded from."""
    model, report = load_fid_network(weights)
    fingerprint = str(report.weights)
    if report.file and Path(report.file).is_file():
        st = Path(report.file).stat()
        fingerprint += f":{Path(report.file).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    net = fold_batchnorm(model).eval().to(device).to(memory_format=torch.channels_last)
    return net, fingerprint


@torch.no_grad()
def extract(source: ImageSource, net: Inception3, weights_id: str, convention: Convention, taps: Sequence[str],
            s: Settings, device: torch.device) -> dict[str, np.ndarray]:  # fmt: skip
    """Features of every readable image of `source`: tap name ("64", "192", "768", "2048", LOGITS) -> N x D
    float32, from the cache when this (input, convention, weights, taps) was computed before."""
    key = None
    if s.cache and source.fingerprint is not None:
        on_gpu = device.type == "cuda" and convention.resizes_on_device  # the resize's device can move a last bit
        ident = json.dumps([source.fingerprint, convention.name, weights_id, sorted(taps), s.skip_bad_images, on_gpu])
        key = cache_dir() / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.npz"
        if key.is_file():
            with np.load(key, allow_pickle=False) as cached:
                return {t: cached[t] for t in taps}
    dims = sorted({int(t) for t in taps if t != LOGITS} | ({2048} if LOGITS in taps else set()))
    # files are decoded in worker processes, and resized there too unless the GPU does it (where it can)
    on_device = device.type == "cuda" and convention.resizes_on_device
    loader: Iterable[tuple[list[Tensor], list[str]]]
    if source.stream is not None:  # tensors and generators: in order, batch by batch
        loader = _stream_batches(source, s.batch_size)
    else:
        loader = DataLoader(_Prepared(source, convention, prepare=not on_device), batch_size=s.batch_size,
                            num_workers=s.workers, collate_fn=_collate)  # fmt: skip
    prepared_in_loader = source.stream is None and not on_device
    out: dict[str, list[np.ndarray]] = {t: [] for t in taps}
    bad: list[str] = []
    with progress_bar(
        total=source.count or None, desc=f"features {source.name}", unit="img", disable=not s.show_progress
    ) as bar:
        for images, skipped in loader:
            if skipped and not s.skip_bad_images:
                raise UserError(f"{skipped[0]}, or pass --skip-bad-images")
            bad += skipped
            bar.update(len(images) + len(skipped))
            if not images:
                continue
            if prepared_in_loader:
                x = torch.stack(images).to(device)
            else:
                x = torch.stack([convention.prepare(im.to(device, non_blocking=True)) for im in images])
            x = x.contiguous(memory_format=torch.channels_last)
            pooled = pooled_taps(net, x, dims)
            for t in taps:
                value = pooled[2048].mm(net.fc.weight.T) if t == LOGITS else pooled[int(t)]
                out[t].append(value.float().cpu().numpy())
    if bad:
        first = bad[0].split(" (")[0].removeprefix("cannot decode image ")
        print(f"skipped {len(bad)} unreadable image(s) in {source.name}, first: {first}", file=sys.stderr, flush=True)
    if not out[taps[0]]:
        raise UserError(f"{source.name}: no readable images")
    features = {t: np.concatenate(v) for t, v in out.items()}
    if key is not None:
        arrays: dict[str, Any] = features
        atomic_write(key, lambda tmp: np.savez(open(tmp, "wb"), **arrays))  # noqa: SIM115
    return features


def calculate_metrics(input1: Any, input2: Any = None, **options: Any) -> dict[str, float]:
    """The asked metrics (isc, fid, kid, prc) as one flat dict with torch-fidelity's keys.

    Inputs: a folder (recursive), a .zip, `fashion-mnist:train|test`, a .npz of statistics (FID only),
    a uint8 N x 3 x H x W tensor or an iterable of them, or a callable `generate(n)` returning n uint8
    images (with `num_samples`). `options` are the fields of `Settings`."""
    unknown = sorted(set(options) - set(Settings.__dataclass_fields__))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(Settings.__dataclass_fields__)}")
    s = Settings(**options)
    convention = get_convention(s.convention)
    check_settings(s, input2 is not None)
    device = resolve_device(s.device)
    paths = [x for x in (input1, input2) if isinstance(x, (str, os.PathLike)) and str(x).endswith(".npz")]
    if paths and (s.isc or s.kid or s.prc):
        raise UserError("a .npz of statistics serves FID only; give images for --isc, --kid and --prc")
    stats = {str(p): read_stats(p, convention.name, s.dims) for p in paths}  # checked before any work
    sources = [None if x is None or str(x) in stats else open_source(x, s.num_samples, s.batch_size)
               for x in (input1, input2)]  # fmt: skip
    check_counts(s, sources)
    taps = ([LOGITS] if s.isc else []) + ([str(s.dims)] if s.fid or s.kid or s.prc else [])
    net, weights_id = feature_network(s.weights, device) if any(sources) else (None, "")
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # full fp32 convolutions on GPUs: TF32 (PyTorch's default) moves scores
    try:
        feats = [None if src is None else extract(src, net, weights_id, convention, taps, s, device)  # type: ignore[arg-type]
                 for src in sources]  # fmt: skip
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    result: dict[str, float] = {}
    if s.isc:
        assert feats[0] is not None
        result["inception_score_mean"], result["inception_score_std"] = inception_score(
            feats[0][LOGITS], s.isc_splits, s.samples_shuffle, s.seed)  # fmt: skip
    pool = [None if f is None or str(s.dims) not in f else f[str(s.dims)] for f in feats]
    if s.fid:
        moments = []
        for x, src, f in zip((input1, input2), sources, pool, strict=True):
            if f is None or src is None:
                moments.append(stats[str(x)])
                continue
            if len(f) <= s.dims:
                raise UserError(f"FID at the {s.dims}-d tap needs more than {s.dims} images for a full-rank "
                                f"covariance, but {src.name} has {len(f)} readable ones; add images or pass a "
                                f"smaller --dims")  # fmt: skip
            moments.append(statistics(f, convention))
        result["frechet_inception_distance"] = fid_from_statistics(*moments[0], *moments[1], convention)
    if s.kid:
        assert pool[0] is not None and pool[1] is not None
        result["kernel_inception_distance_mean"], result["kernel_inception_distance_std"] = kernel_inception_distance(
            pool[0], pool[1], convention, s.kid_subsets, s.kid_subset_size, s.kid_degree, s.seed)  # fmt: skip
    if s.prc:
        assert pool[0] is not None and pool[1] is not None
        result["precision"], result["recall"], result["f_score"] = precision_recall(pool[0], pool[1],
                                                                                    s.prc_neighborhood)  # fmt: skip
    return result


def check_counts(s: Settings, sources: list[ImageSource | None]) -> None:
    """The image counts each metric needs, checked before the network runs (unreadable images skipped
    later are checked again on the features; tensors and generators are checked as they come)."""
    known = [src for src in sources if src is not None and src.count]  # count 0: an iterable, not known yet
    for src in known:
        if s.kid and s.convention != "clean-fid" and src.count < s.kid_subset_size:  # clean-fid uses smaller subsets
            smallest = min(x.count for x in known)
            raise UserError(f"KID subsets of {s.kid_subset_size} images need that many in each input, but {src.name} "
                            f"has {src.count}; lower --kid-subset-size to at most {smallest}")  # fmt: skip
        if s.fid and src.count <= s.dims:
            raise UserError(f"FID at the {s.dims}-d tap needs more than {s.dims} images for a full-rank covariance, "
                            f"but {src.name} has {src.count}; add images or pass a smaller --dims")  # fmt: skip
    first = sources[0]
    if s.isc and first is not None and first.count and first.count < s.isc_splits:
        raise UserError(f"the Inception Score needs at least --isc-splits ({s.isc_splits}) images; {first.name} has "
                        f"{first.count}")  # fmt: skip


def check_settings(s: Settings, two_inputs: bool) -> None:
    """One line for settings that cannot work, before anything is read."""
    if not (s.isc or s.fid or s.kid or s.prc):
        raise UserError("ask for at least one metric: --isc, --fid, --kid or --prc")
    if (s.fid or s.kid or s.prc) and not two_inputs:
        raise UserError("--fid, --kid and --prc compare two inputs: give INPUT1 (generated) and INPUT2 (reference)")
    if s.dims not in (64, 192, 768, 2048):
        raise UserError(f"invalid --dims {s.dims}; valid values: 64, 192, 768, 2048")
    for name in ("isc_splits", "kid_subsets", "kid_subset_size", "kid_degree", "prc_neighborhood", "batch_size"):
        if getattr(s, name) < 1:
            raise UserError(f"invalid --{name.replace('_', '-')} {getattr(s, name)}: must be >= 1")
    if s.kid_subset_size < 2:
        raise UserError(f"invalid --kid-subset-size {s.kid_subset_size}: must be >= 2")
    if s.workers < 0:
        raise UserError(f"invalid --workers {s.workers}: must be >= 0")


def format_table(result: dict[str, float], convention: str) -> str:
    """A short table of the computed metrics."""
    names = {"inception_score": "Inception Score", "frechet_inception_distance": "FID", "kernel_inception_distance":
             "KID", "precision": "precision", "recall": "recall", "f_score": "F-score"}  # fmt: skip
    lines = [f"{'metric':<18}{'value':>16}{'std':>14}   ({convention} convention)"]
    for key, label in names.items():
        if f"{key}_mean" in result:
            lines.append(f"{label:<18}{result[f'{key}_mean']:>16.7g}{result[f'{key}_std']:>14.7g}")
        elif key in result:
            lines.append(f"{label:<18}{result[key]:>16.7g}")
    return "\n".join(lines)
