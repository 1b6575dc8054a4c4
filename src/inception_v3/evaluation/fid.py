"""Frechet Inception Distance with the FID tools' network (`inception_v3_fid` preset) and their input
convention: images as RGB in [0, 1], resized bilinearly to 299x299, scaled to [-1, 1]; pool3 features
(2048-d) in float32; mean and covariance in float64."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..data.image_io import is_image_file, read_image
from ..errors import UserError
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.inception import Inception3
from ..utils.devices import model_device
from ..utils.io import atomic_write
from .features import TAPS, pooled_taps

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
    """Features (N x dims) of every image in `folder`, in sorted file order, computed on `model`'s device."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    if len(paths) < 2:
        raise UserError(f"{folder} holds {len(paths)} image(s); FID needs at least 2")
    device = model_device(model)
    feats = []
    for i in tqdm(range(0, len(paths), batch_size), desc=f"features {folder}", disable=not show_progress):
        batch = []
        for path in paths[i : i + batch_size]:
            img = read_image(path)
            img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
            x = F.interpolate(img[None].float() / 255.0, size=(299, 299), mode="bilinear", align_corners=False)
            batch.append(x)
        x = torch.cat(batch).to(device) * 2 - 1
        feats.append(features(model, x, dims).cpu().numpy())
    return np.concatenate(feats).astype(np.float64)


def statistics(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return acts.mean(axis=0), np.cov(acts, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:  # fmt: skip
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)); a tiny diagonal offset if the product is singular."""
    try:
        from scipy import linalg
    except ImportError:
        raise UserError("FID needs scipy: pip install 'inception-v3[fid]'") from None
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise UserError(f"the covariance square root has an imaginary part {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


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
    """Statistics of a folder of images."""
    if not Path(source).is_dir():
        raise UserError(f"{source} is neither a folder of images nor a .npz statistics file")
    return statistics(activations(model, source, batch_size, dims))


def save_stats(mu: np.ndarray, sigma: np.ndarray, path: str | os.PathLike[str], convention: str = "pytorch-fid"
               ) -> None:  # fmt: skip
    """`mu` and `sigma` (the keys pytorch-fid and clean-fid read) and the convention they were computed with."""
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), mu=mu, sigma=sigma, convention=convention))  # noqa: SIM115
