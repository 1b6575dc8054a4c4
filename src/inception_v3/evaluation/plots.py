"""Evaluation figures: the confusion matrix and the reliability diagram (calibration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.figures import new_figure, save_figure


def plot_confusion(confusion: list[list[int]], classes: list[str], path: Path, title: str) -> None:
    """Row-normalized confusion matrix with counts."""
    m = np.asarray(confusion, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = new_figure(1.0 + 0.55 * len(classes), 0.8 + 0.5 * len(classes))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), count in np.ndenumerate(m):
        ax.text(j, i, int(count), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    save_figure(fig, path)


def plot_reliability(bins: list[dict[str, float]], ece: float, path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal of perfect calibration."""
    fig, ax = new_figure(4.5, 4.5)
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
    confidence, accuracy = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
    ax.bar(confidence, accuracy, width=1 / 15, alpha=0.7, edgecolor="black", label="accuracy per confidence bin")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"Reliability (ECE {ece:.4f})")
    ax.legend(loc="upper left")
    save_figure(fig, path)
