"""Reference statistics that stand in for an input's images, made once: FID's mean and covariance, and the
features KID and precision/recall need.

- Ours (`save_stats`, `fidelity --save-stats`): `.npz` with `mu`, `sigma`, `features`, and the `convention` and
  tap (`dims`) they were computed with, which must match when they are used.
- pytorch-fid's and clean-fid's: `.npz` with `mu` and `sigma`; clean-fid's KID files (`*_kid.npz`) with
  `feats`.
- torch-fidelity's cache (`$TORCH_HOME/fidelity_cache`): `*-stat-fid-<tap>.pt` (mu and sigma) and
  `*-features-<tap>.pt` (features), read with only numpy's array types allowed to unpickle.
- Named references (`cifar10-train`, `cifar10-test`): clean-fid's published statistics, in clean-fid's
  convention, downloaded once (`$INCEPTION_V3_MIRROR` serves them from a mirror).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError, reason
from ..utils.download import MIRROR_ENV, fetch_url
from ..utils.io import atomic_savez

CLEAN_FID_STATS = "https://www.cs.cmu.edu/~clean-fid/stats"
NAMED = {"cifar10-train": ("cifar10", "train", 32), "cifar10-test": ("cifar10", "test", 32)}  # clean-fid's names


@dataclass
class Reference:
    """What a statistics file holds: FID's moments, the features (None: not in the file), and what they were
    computed with when the file says (convention, tap)."""

    path: str
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    features: np.ndarray | None = None
    convention: str | None = None

    @property
    def dims(self) -> int:
        return len(self.mu) if self.mu is not None else self.features.shape[1]  # type: ignore[union-attr]


def is_statistics(spec: object) -> bool:
    """Whether an input names statistics rather than images: a named reference, a torch-fidelity `.pt`, or a
    `.npz` holding `mu`/`sigma` or `feats` (not a sample batch's `arr_0`)."""
    if not isinstance(spec, (str, os.PathLike)):
        return False
    text = str(spec)
    if text in NAMED or text.endswith(".pt"):
        return True
    if not text.lower().endswith(".npz") or not Path(text).is_file():
        return False
    try:
        with np.load(text, allow_pickle=False) as data:
            return {"mu", "sigma"} <= set(data.files) or "feats" in data.files
    except (OSError, ValueError):
        return False


def read_reference(spec: str | os.PathLike[str], convention: str, dims: int, metric: str = "fid") -> Reference:
    """The statistics `spec` names, checked against the convention and tap asked for; `metric` ("fid" or "kid")
    picks a named reference's file."""
    text = str(spec)
    if text in NAMED:
        return _named(text, convention, dims, metric)
    path = Path(text)
    if not path.is_file():
        raise UserError(f"statistics file {path} does not exist")
    ref = _read_pt(path) if path.suffix == ".pt" else _read_npz(path)
    if (ref.convention is not None and ref.convention != convention) or ref.dims != dims:
        made = ref.convention or "convention not recorded"
        raise UserError(
            f"{path} holds statistics of {ref.dims}-d features ({made}); asked for {dims}-d with "
            f"`convention` {convention}: recompute them or pass the matching `dims` and `convention`"
        )
    return ref


def _read_npz(path: Path) -> Reference:
    try:
        with np.load(path, allow_pickle=False) as data:
            ref = Reference(str(path), *(data[k] if k in data.files else None for k in ("mu", "sigma")))
            ref.features = data["features"] if "features" in data.files else data.get("feats")
            ref.convention = str(data["convention"]) if "convention" in data.files else None
    except Exception as exc:  # numpy and zipfile raise several types for a damaged file
        raise UserError(f"{path} is not a statistics file ({type(exc).__name__})") from None
    if ref.features is None and (ref.mu is None or ref.sigma is None):
        raise UserError(f"{path} has neither 'mu' and 'sigma' nor features; it is not a statistics file")
    if ref.mu is not None and (ref.mu.ndim != 1 or ref.sigma is None or ref.sigma.shape != (len(ref.mu),) * 2):
        raise UserError(
            f"{path} is not a statistics file: mu {ref.mu.shape}, sigma {getattr(ref.sigma, 'shape', None)}"
        )
    if ref.features is not None and ref.features.ndim != 2:
        raise UserError(f"{path} holds features of shape {ref.features.shape}; expected N x D")
    return ref


def _read_pt(path: Path) -> Reference:
    """torch-fidelity's cached statistics (a dict of numpy arrays) or features (a tensor), in its convention."""
    core = np.core if hasattr(np, "core") else np._core  # type: ignore[attr-defined]
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype("float64")), type(np.dtype("float32"))]
    try:
        with torch.serialization.safe_globals(allowed):
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, or one holding other objects: refused, never unpickled freely
        raise UserError(f"cannot read {path} as torch-fidelity's cached statistics: {reason(exc)}") from None
    if isinstance(data, torch.Tensor) and data.ndim == 2:
        return Reference(str(path), features=data.float().numpy(), convention="torch-fidelity")
    if isinstance(data, dict) and {"mu", "sigma"} <= set(data):
        return Reference(str(path), np.asarray(data["mu"]), np.asarray(data["sigma"]), convention="torch-fidelity")
    raise UserError(f"{path} is not torch-fidelity's cached statistics (*-stat-fid-<tap>.pt) or features")


def _named(name: str, convention: str, dims: int, metric: str) -> Reference:
    """A named reference: clean-fid's published statistics ("clean" mode: this project's clean-fid convention)."""
    dataset, split, res = NAMED[name]
    if convention != "clean-fid" or dims != 2048:
        raise UserError(
            f"{name}'s published statistics are clean-fid's, at pool3: use `convention='clean-fid'` and "
            f"`dims=2048`, or save statistics once from the images in your convention"
        )
    file = f"{dataset}_clean_{split}_{res}{'_kid' if metric == 'kid' else ''}.npz"
    mirror = os.environ.get(MIRROR_ENV)
    ref = _read_npz(fetch_url(f"{(mirror or CLEAN_FID_STATS).rstrip('/')}/{file}", check=_statistics_file))
    ref.convention = "clean-fid"
    return ref


def _statistics_file(path: Path) -> None:
    _read_npz(path)  # a statistics file that parses, or one UserError line


def save_stats(
    path: str | os.PathLike[str], features: np.ndarray, mu: np.ndarray, sigma: np.ndarray, convention: str
) -> None:
    """FID's moments, the features (for KID and precision/recall) and the convention, written atomically."""
    arrays: dict[str, Any] = {"mu": mu, "sigma": sigma, "features": features, "convention": convention}
    atomic_savez(path, arrays)
