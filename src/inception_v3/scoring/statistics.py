"""Statistics files (`.npz`) that stand in for an input's images: `mu` and `sigma` (the keys pytorch-fid and
clean-fid read and write), plus, in ours, the convention and the tap they were computed with."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..utils.io import atomic_write


def is_statistics(path: object) -> bool:
    """Whether an input names a statistics file: a `.npz` path holding `mu` and `sigma` (not a sample batch)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).lower().endswith(".npz") or not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return "mu" in data.files and "sigma" in data.files
    except (OSError, ValueError):
        return False


def read_stats(
    path: str | os.PathLike[str], convention: str = "pytorch-fid", dims: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (mu, sigma) of a statistics file: ours (which record the convention and tap they were computed with:
    both must match), pytorch-fid's or clean-fid's (`mu` and `sigma`: the size must match `dims`)."""
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
        raise UserError(
            f"{path} holds statistics of {len(mu)}-d features ({made or 'convention not recorded'}); "
            f"asked for {dims}-d with `convention` {convention}: recompute them or pass the matching "
            f"`dims` and `convention`"
        )
    return mu, sigma


def save_stats(
    mu: np.ndarray, sigma: np.ndarray, path: str | os.PathLike[str], convention: str = "pytorch-fid"
) -> None:
    """`mu` and `sigma` and the convention they were computed with, written atomically."""
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), mu=mu, sigma=sigma, convention=convention))  # noqa: SIM115
