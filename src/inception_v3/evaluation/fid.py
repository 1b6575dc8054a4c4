"""Frechet Inception Distance with the FID tools' network (`inception_v3_fid` preset) and their input
convention: images as RGB in [0, 1], resized bilinearly to 299x299, scaled to [-1, 1]; pool3 features
(2048-d) in float32; mean and covariance in float64."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.inception import Inception3
from ..utils.devices import model_device
from ..utils.io import atomic_write
from ..utils.progress import progress_bar
from .conventions import CONVENTIONS
from .features import TAPS, pooled_taps
from .image_sources import folder_source, indexed_source, is_indexed
from .scores import statistics

FID_WEIGHTS = "pytorch-fid/2015-12-05"


def load_fid_network(weights: str | os.PathLike[str] = FID_WEIGHTS) -> tuple[Inception3, LoadReport]:
    """The FID graph with the given weights: by default pytorch-fid's pt_inception-2015-12-05 (downloaded once)."""
    model, report = load_pretrained(weights, preset="inception_v3_fid")
    if not model.config.last_block_max_pool or model.config.pool_include_pad:
        raise UserError(f"{weights} is not an FID network's weights (load it with preset inception_v3_fid)")
    return model.eval(), report


DIMS = tuple(TAPS)


def features(model: Inception3, x: Tensor, dims: int = 2048) -> Tensor:
    """Average-pooled features at one of the FID tools' taps: 64 (first max pool), 192 (second max pool),
    768 (Mixed_6e) or 2048 (pool3)."""
    return pooled_taps(model, x, [dims])[dims]


@torch.no_grad()
def activations(model: Inception3, folder: str | os.PathLike[str], batch_size: int = 50, dims: int = 2048,
                show_progress: bool = True) -> np.ndarray:  # fmt: skip
    """Features (N x dims) of every image in `folder` (recursive, sorted; or WebDataset shards
    `wds:DIR/PATTERN`, a Hugging Face split `hf:NAME[:SPLIT]`), decoded and resized as pytorch-fid does
    (`CONVENTIONS["pytorch-fid"]`), computed on `model`'s device; float64 as pytorch-fid keeps them."""
    source = indexed_source(str(folder)) if is_indexed(folder) else folder_source(Path(folder))
    if source.count < 2:
        raise UserError(f"{folder} holds {source.count} image(s); FID needs at least 2")
    convention, device = CONVENTIONS["pytorch-fid"], model_device(model)
    feats = []
    for i in progress_bar(range(0, source.count, batch_size), desc=f"features {folder}", disable=not show_progress):
        images = [torch.from_numpy(source.read(k)) for k in range(i, min(i + batch_size, source.count))]
        x = torch.stack([convention.prepare(im) for im in images]).to(device)
        feats.append(features(model, x, dims).cpu().numpy())
    return np.concatenate(feats).astype(np.float64)


def read_stats(path: str | os.PathLike[str], convention: str = "pytorch-fid", dims: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The (mu, sigma) of a .npz statistics file: ours (which record the convention and tap they were computed
    with: both must match), pytorch-fid's or clean-fid's (`mu` and `sigma`: the size must match `dims`)."""
    if not Path(path).is_file():
        raise UserError(f"statistics file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"], data["sigma"]
            made = str(data["convention"]) if "convention" in data else None
    except KeyError:
        raise UserError(f"{path} has no 'mu' and 'sigma' arrays; it is not a statistics file") from None
    except Exception as exc:  # numpy and zipfile raise several types for a damaged file
        raise UserError(f"{path} is not a statistics file ({type(exc).__name__})") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{path} is not a statistics file: mu {mu.shape}, sigma {sigma.shape}")
    if (made is not None and made != convention) or (dims is not None and len(mu) != dims):
        raise UserError(f"{path} holds statistics of {len(mu)}-d features ({made or 'convention not recorded'}); "
                        f"asked for {dims}-d with --convention {convention}: recompute them or pass the matching "
                        f"--dims and --convention")  # fmt: skip
    return mu, sigma


def stats_for(source: str, model: Inception3, batch_size: int, dims: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of a folder of images, WebDataset shards (`wds:DIR/PATTERN`) or an HF split (`hf:NAME[:SPLIT]`)."""
    if not (is_indexed(source) or Path(source).is_dir()):
        raise UserError(f"{source} is neither a folder of images, wds:DIR/PATTERN, hf:NAME[:SPLIT] nor a .npz "
                        f"statistics file")  # fmt: skip
    return statistics(activations(model, source, batch_size, dims), CONVENTIONS["pytorch-fid"])


def save_stats(mu: np.ndarray, sigma: np.ndarray, path: str | os.PathLike[str], convention: str = "pytorch-fid"
               ) -> None:  # fmt: skip
    """`mu` and `sigma` (the keys pytorch-fid and clean-fid read) and the convention they were computed with."""
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), mu=mu, sigma=sigma, convention=convention))  # noqa: SIM115
