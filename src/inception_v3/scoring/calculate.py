"""`calculate_metrics`: Inception Score, FID, KID and precision/recall of generated images, with the vocabulary,
defaults and numbers of torch-fidelity, clean-fid or pytorch-fid (`convention`); `inception-v3 fidelity` and
`inception-v3 fid` are this function.

Images come from any source (`data.formats`), are decoded and resized in DataLoader workers as the chosen tool
does it, and go through the FID network folded for scoring (`network.py`) in the one extraction loop
(`evaluation.extraction`), which caches features per (input, convention, weights, taps). Precision/recall use
the Inception pool3 features (torch-fidelity's `feature_extractor="inception-v3-compat"`; its own default is
VGG-16).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.formats import open_source
from ..data.image_io import Stored, decode_rgb
from ..data.sources import ImageSource, SubsetImages
from ..errors import UserError
from ..evaluation.extraction import Extracted, Pipeline, extract
from ..models.inception import Inception3
from ..utils.devices import resolve_device
from ..utils.settings import check_fields, setting
from .conventions import CONVENTIONS, Convention, get_convention
from .network import DIMS, FID_WEIGHTS, LOGITS, feature_network, full_fp32, tap_outputs
from .scores import (
    IS_SPLITS,
    KID_DEGREE,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    SEED,
    fid_from_statistics,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    statistics,
)
from .statistics import NAMED, is_statistics, read_reference, save_stats

log = logging.getLogger(__name__)


@dataclass
class ScoringSettings:
    """The options of a scoring run; the defaults are torch-fidelity's."""

    isc: bool = setting(False, "Inception Score (of input 1; on the logits without the fc bias)")
    fid: bool = setting(False, "Frechet Inception Distance")
    kid: bool = setting(False, "Kernel Inception Distance")
    prc: bool = setting(
        False,
        "precision, recall and F-score on Inception pool3 features (torch-fidelity's default "
        "network for these is VGG-16: its numbers equal ours with "
        "feature_extractor='inception-v3-compat')",
    )
    convention: str = setting(
        "torch-fidelity", "whose resize, normalization and arithmetic", choices=tuple(CONVENTIONS)
    )
    weights: str = setting(FID_WEIGHTS, "the FID network: a name, URL or file (the tools' 2015 graph, downloaded once)")
    isc_splits: int = setting(IS_SPLITS, "Inception Score splits", low=1)
    kid_subsets: int = setting(KID_SUBSETS, "KID subsets", low=1)
    kid_subset_size: int = setting(KID_SUBSET_SIZE, "images per KID subset", low=2)
    kid_degree: int = setting(KID_DEGREE, "KID polynomial kernel degree", low=1)
    prc_neighborhood: int = setting(3, "precision/recall k-th neighbour", low=1)
    samples_shuffle: bool = setting(True, "shuffle the samples before the Inception Score splits")
    seed: int = setting(SEED, "seed of the shuffle and the KID subsets (torch-fidelity's)", low=0, high=2**32 - 1)
    dims: int = setting(2048, "feature tap of FID, KID and precision/recall (2048: pool3)", choices=DIMS)
    batch_size: int = setting(64, "images per forward pass", low=1)
    workers: int = setting(2, "decoding and resizing processes", low=0)
    device: str = setting("auto", "where the network runs: cpu, cuda, cuda:N or auto (CUDA when there is one)")
    cache: bool = setting(True, "read and keep the inputs' features in the feature cache")
    skip_bad_images: bool = setting(False, "skip images that do not decode (and count them)")
    save_stats: str | None = setting(None, "write input 1's statistics (mu, sigma, convention, tap) to this .npz")

    def __post_init__(self) -> None:
        check_fields(self)


def calculate_metrics(
    input1: Any,
    input2: Any = None,
    *,
    isc: bool = False,
    fid: bool = False,
    kid: bool = False,
    prc: bool = False,
    convention: str = "torch-fidelity",
    weights: str = FID_WEIGHTS,
    isc_splits: int = IS_SPLITS,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    kid_degree: int = KID_DEGREE,
    prc_neighborhood: int = 3,
    samples_shuffle: bool = True,
    seed: int = SEED,
    dims: int = 2048,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    cache: bool = True,
    skip_bad_images: bool = False,
    save_stats: str | None = None,
    num_samples: int | None = None,
    show_progress: bool = True,
) -> dict[str, float]:
    """The asked metrics (isc, fid, kid, prc) as one flat dict with torch-fidelity's keys.

    Inputs (input 1: generated, input 2: reference): anything `data.formats.open_source` opens (a folder,
    a .zip, a .npz sample batch, `wds:...`, `hf:...`, `fashion-mnist:SPLIT`), a .npz of statistics (FID only),
    a uint8 N x 3 x H x W tensor or an iterable of them, or a callable `generate(n)` returning n uint8 images
    (with `num_samples`). The keyword arguments are `ScoringSettings`' fields, with its defaults."""
    settings = dict(locals())
    s = ScoringSettings(**{f.name: settings[f.name] for f in dataclasses.fields(ScoringSettings)})
    return score(input1, input2, s, num_samples, show_progress)


def score(
    input1: Any, input2: Any, s: ScoringSettings, num_samples: int | None = None, show_progress: bool = True
) -> dict[str, float]:
    """`calculate_metrics` with its settings as one object."""
    conv = get_convention(s.convention)
    check_settings(s, input2 is not None)
    refs = {id(x): references(x, s) for x in (input1, input2) if is_statistics(x)}  # checked before any work
    if id(input1) in refs and (s.isc or s.save_stats):
        raise UserError(
            "the Inception Score and `save_stats` need images: statistics stand in for FID, KID and "
            "precision/recall only"
        )
    sources = [
        None if x is None or id(x) in refs else open_source(x, num_samples, s.batch_size) for x in (input1, input2)
    ]
    rank, world, device = process_group(s.device)
    network = feature_network(s.weights, device) if any(sources) else None  # the weights: checked before counts
    check_counts(s, sources)
    taps = ([LOGITS] if s.isc else []) + ([str(s.dims)] if s.fid or s.kid or s.prc or s.save_stats else [])
    feats = features(sources, s, taps, show_progress and rank == 0, network, device, rank, world)
    if rank != 0:
        return {}  # the first process computes, prints and writes
    result: dict[str, float] = {}
    f1, f2 = (
        refs[id(x)].features if id(x) in refs else None if f is None else f.get(str(s.dims))
        for x, f in zip((input1, input2), feats, strict=True)
    )
    if s.save_stats:
        assert f1 is not None
        save_stats(s.save_stats, f1, *statistics(f1, conv), conv.name)
    if s.isc:
        assert feats[0] is not None
        result["inception_score_mean"], result["inception_score_std"] = inception_score(
            feats[0][LOGITS], s.isc_splits, s.samples_shuffle, s.seed
        )
    if s.fid:
        (mu1, sigma1), (mu2, sigma2) = (
            (refs[id(x)].mu, refs[id(x)].sigma) if id(x) in refs else fid_statistics(f, src, s, conv)
            for x, src, f in zip((input1, input2), sources, (f1, f2), strict=True)
        )
        result["frechet_inception_distance"] = fid_from_statistics(mu1, sigma1, mu2, sigma2, conv)
    if s.kid:
        assert f1 is not None and f2 is not None
        result["kernel_inception_distance_mean"], result["kernel_inception_distance_std"] = kernel_inception_distance(
            f1, f2, conv, s.kid_subsets, s.kid_subset_size, s.kid_degree, s.seed
        )
    if s.prc:
        assert f1 is not None and f2 is not None
        result["precision"], result["recall"], result["f_score"] = precision_recall(f1, f2, s.prc_neighborhood)
    return result


def references(spec: Any, s: ScoringSettings) -> Any:
    """What a statistics input stands in with: FID's moments, and the features KID and precision/recall need."""
    ref = read_reference(spec, s.convention, s.dims, "fid" if s.fid else "kid")
    if (s.kid or s.prc) and ref.features is None:
        extra = read_reference(spec, s.convention, s.dims, "kid") if str(spec) in NAMED else None
        if extra is None or extra.features is None:
            raise UserError(
                f"{spec} holds no features, which `kid` and `prc` need (statistics saved with "
                f"`save_stats` keep them; clean-fid keeps them in its *_kid.npz files)"
            )
        ref.features = extra.features
    if s.fid and ref.mu is None:
        assert ref.features is not None
        ref.mu, ref.sigma = statistics(ref.features, get_convention(s.convention))
    return ref


def process_group(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device): under torchrun, the process group (NCCL on GPUs, gloo on CPUs) joined and, on
    GPUs, each process's own GPU (its local rank): one process per GPU; else (0, 1, the device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1, resolve_device(device)
    gpu = device in ("auto", "cuda") and torch.cuda.is_available()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if gpu else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if world == 1 or not gpu:
        return rank, world, resolve_device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise UserError(
            f"torchrun started more processes per machine than it has GPUs ({torch.cuda.device_count()}):"
            f" start one per GPU (--nproc-per-node)"
        )
    torch.cuda.set_device(local)  # NCCL's collectives use the current device
    return rank, world, resolve_device(f"cuda:{local}")


def features(
    sources: list[ImageSource | None],
    s: ScoringSettings,
    taps: list[str],
    show_progress: bool,
    network: tuple[Inception3, str, Any] | None = None,
    device: torch.device | None = None,
    rank: int = 0,
    world: int = 1,
) -> list[dict[str, np.ndarray] | None]:
    """Each source's features at `taps`, from the FID network (`feature_network`; loaded here unless given) in the
    settings' convention (cached). Over `world` processes, each extracts every world-th image and the first
    gathers them in the source's order (the others get None)."""
    if not taps or not any(sources):
        return [None for _ in sources]
    device = device or resolve_device(s.device)
    net, weights_id, _ = network or feature_network(s.weights, device)
    conv = get_convention(s.convention)
    on_device = device.type == "cuda" and conv.resizes_on_device  # the resize's device can move a last bit
    pipeline = Pipeline(
        partial(prepare, conv, not on_device),
        partial(run, net, conv, on_device, taps, device),
        json.dumps([conv.name, weights_id, sorted(taps), on_device]),
    )
    out: list[dict[str, np.ndarray] | None] = []
    with full_fp32(device):
        for src in sources:
            if src is None:
                out.append(None)
                continue
            if world > 1 and src.streamed:
                raise UserError(
                    f"{src.name} is streamed: under torchrun every process would score its own images; "
                    f"score it in one process, or use the metric objects (inception_v3.scoring.metrics)"
                )
            share = SubsetImages(src, np.arange(rank, len(src), world)) if world > 1 else src
            progress = f"features {src.name}" + (f" ({world} processes)" if world > 1 else "")
            extract_share = partial(
                extract,
                share,
                pipeline,
                batch_size=s.batch_size,
                workers=s.workers,
                progress=progress if show_progress else None,
                skip_bad_images=s.skip_bad_images,
                cache=s.cache,
            )
            if world == 1:
                out.append(_noted(extract_share(), src.name).arrays)
                continue
            part, error = None, None  # every process learns of an error on any one, so none waits for the others
            try:
                if len(share):  # a process with no image of this input still joins the gathering
                    got = _noted(extract_share(), src.name)
                    part = (rank + world * got.index, got.arrays)
            except UserError as exc:
                error = str(exc)
            out.append(gathered(part, error, rank, src.name))
    return out


def _noted(got: Extracted, name: str) -> Extracted:
    """`got`, its skipped unreadable images noted in one log line."""
    if got.skipped:
        first = got.skipped[0].split(" (")[0].removeprefix("cannot decode image ")
        log.warning("skipped %d unreadable image(s) in %s, first: %s", len(got.skipped), name, first)
    return got


def gathered(
    part: tuple[np.ndarray, dict[str, np.ndarray]] | None, error: str | None, rank: int, name: str
) -> dict[str, np.ndarray] | None:
    """Every process's features (global index, arrays), in the source's order, on the first process (None on the
    others); an error on any process is raised on all."""
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, (part, error))
    errors = [e for _, e in parts if e is not None]
    if errors:
        raise UserError(errors[0])
    found = [p for p, _ in parts if p is not None]
    if not found:
        raise UserError(f"{name}: no readable images")
    if rank != 0:
        return None
    order = np.argsort(np.concatenate([i for i, _ in found]), kind="stable")
    return {k: np.concatenate([a[k] for _, a in found])[order] for k in found[0][1]}


def prepare(conv: Convention, resize: bool, item: Stored) -> Tensor:
    """In a worker: an image as the tools decode it, resized by the convention unless the GPU does it."""
    image = torch.from_numpy(decode_rgb(item))
    return conv.prepare(image) if resize else image


def run(
    net: Inception3, conv: Convention, on_device: bool, taps: list[str], device: torch.device, items: list[Tensor]
) -> dict[str, Tensor]:
    """A batch of prepared images through the network: the taps' features."""
    if on_device:
        x = torch.stack([conv.prepare(im.to(device, non_blocking=True)) for im in items])
    else:
        x = torch.stack(items).to(device)
    return tap_outputs(net, x, taps)


def fid_statistics(
    features: np.ndarray | None, source: ImageSource | None, s: ScoringSettings, conv: Convention
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance FID compares, from as many images as the tools accept (two or more). With no
    more images than the tap has dimensions, the covariance is rank-deficient: the number is the tools' own, but
    biased upwards and comparable only with FIDs from as many images; a note says so."""
    name = source.name if source is not None else "an input"
    assert features is not None
    if len(features) < 2:
        raise UserError(f"FID needs at least 2 images, but {name} has {len(features)} readable one(s)")
    if len(features) <= s.dims:
        log.warning(
            f"note: FID at the {s.dims}-d tap from {len(features)} images of {name}: the covariance is "
            f"rank-deficient (a full-rank estimate needs more than {s.dims} images); the value is the tools' "
            f"own, biased upwards: compare it only with FIDs from as many images"
        )
    return statistics(features, conv)


def check_counts(s: ScoringSettings, sources: list[ImageSource | None]) -> None:
    """The image counts each metric needs, checked before the network runs (unreadable images skipped
    later are checked again on the features; streamed inputs are checked as they come)."""
    known = [src for src in sources if src is not None and len(src)]  # 0: an iterable, not known yet
    for src in known:
        if s.kid and s.convention != "clean-fid" and len(src) < s.kid_subset_size:  # clean-fid uses smaller subsets
            smallest = min(len(x) for x in known)
            raise UserError(
                f"KID subsets of {s.kid_subset_size} images need that many in each input, but {src.name} "
                f"has {len(src)}; lower `kid_subset_size` to at most {smallest}"
            )
        if s.fid and len(src) < 2:
            raise UserError(f"FID needs at least 2 images, but {src.name} has {len(src)}")
    first = sources[0]
    if s.isc and first is not None and len(first) and len(first) < s.isc_splits:
        raise UserError(
            f"the Inception Score needs at least `isc_splits` ({s.isc_splits}) images; {first.name} has {len(first)}"
        )


def check_settings(s: ScoringSettings, two_inputs: bool) -> None:
    """One line for settings that cannot work together, before anything is read."""
    if not (s.isc or s.fid or s.kid or s.prc or s.save_stats):
        raise UserError("ask for at least one metric: `isc`, `fid`, `kid` or `prc` (or `save_stats`)")
    if (s.fid or s.kid or s.prc) and not two_inputs:
        raise UserError("`fid`, `kid` and `prc` compare two inputs: give input 1 (generated) and input 2 (reference)")


def format_table(result: dict[str, float], convention: str) -> str:
    """A short table of the computed metrics."""
    names = {
        "inception_score": "Inception Score",
        "frechet_inception_distance": "FID",
        "kernel_inception_distance": "KID",
        "precision": "precision",
        "recall": "recall",
        "f_score": "F-score",
    }
    lines = [f"{'metric':<18}{'value':>16}{'std':>14}   ({convention} convention)"]
    for key, label in names.items():
        if f"{key}_mean" in result:
            lines.append(f"{label:<18}{result[f'{key}_mean']:>16.7g}{result[f'{key}_std']:>14.7g}")
        elif key in result:
            lines.append(f"{label:<18}{result[key]:>16.7g}")
    return "\n".join(lines)
