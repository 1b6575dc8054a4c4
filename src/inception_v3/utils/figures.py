"""Matplotlib without a screen, and PNG files written atomically."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .io import atomic_write


def new_figure(width: float, height: float, **subplots: Any) -> tuple[Any, Any]:
    """A figure and its axes (`subplots` goes to plt.subplots: ncols, squeeze, ...)."""
    return plt.subplots(figsize=(width, height), **subplots)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Lay out, write as PNG atomically, and free the figure."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
