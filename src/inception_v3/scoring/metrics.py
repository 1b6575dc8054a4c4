"""Metric objects for training loops, with torchmetrics' vocabulary and the numbers of `calculate_metrics` in
every convention: `update(images, real=True|False)`, `compute()`, `reset()`; their state synchronizes across
DDP processes and Lightning logs them, since they are `torchmetrics.Metric`s.

Images are uint8 N x 3 x H x W, or floats in [0, 1] with `normalize=True` (rounded to the nearest of the 256
levels; torchmetrics truncates instead). Each batch is prepared by the convention and goes through the FID
network folded for scoring, `batch_size` images at a time, on the metric's device (`metric.to(device)`).

- `FrechetInceptionDistance`: float64 sums per side (features, their outer products, the count): 2 x (D^2 + D)
  x 8 bytes whatever the number of images, 67 MB at pool3.
- `KernelInceptionDistance`, `InceptionScore`, `PrecisionRecall`: the features themselves, D x 4 bytes an image
  (8 KiB at pool3; 4 KiB of logits for IS), gathered in sample order before their random subsets are drawn, so
  the split across processes draws the same subsets.

Under a `DistributedSampler`, rank r's k-th image is the sampler's image r + k x world size; give
`real_samples`/`fake_samples` (the number of images the whole run feeds) and the copies it pads in to even out the
ranks are dropped; or give each batch's dataset `indices` (KID, IS, precision/recall), and each image counts once,
in index order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..errors import UserError
from . import scores
from .conventions import Convention, get_convention
from .network import DIMS, FID_WEIGHTS, LOGITS, feature_network, full_fp32, tap_outputs
from .scores import fid_from_statistics, inception_score, kernel_inception_distance, precision_recall, statistics
from .statistics import read_reference

REAL_STATES = ("real_sum", "real_outer", "real_n", "real_features", "real_order")  # kept by reset() on request


class _InceptionMetric(Metric):
    """What the four metrics share: the network and the convention, the checks on `update`'s images, and which
    images count (a distributed sampler's padding)."""

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        tap: str,
        convention: str = "torch-fidelity",
        weights: str = FID_WEIGHTS,
        normalize: bool = False,
        batch_size: int = 64,
        real_samples: int | None = None,
        fake_samples: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.convention: Convention = get_convention(convention)
        self.tap, self.normalize, self.batch_size = tap, normalize, batch_size
        self.limits = {True: real_samples, False: fake_samples}
        self.net = feature_network(weights, torch.device("cpu"))[0]
        self._seen = {True: 0, False: 0}

    def _images(self, images: Tensor) -> Tensor:
        """uint8 N x 3 x H x W, or one line saying what is wrong."""
        where = f"{type(self).__name__}.update"
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise UserError(f"{where}: expected images of shape N x 3 x H x W, got {got}")
        if self.normalize:
            if not images.is_floating_point():
                raise UserError(f"{where}: `normalize=True` takes floats in [0, 1], got {images.dtype}")
            if len(images) and (images.min() < 0 or images.max() > 1):
                raise UserError(
                    f"{where}: float images must lie in [0, 1] (normalize=True); got "
                    f"values in [{float(images.min()):.3g}, {float(images.max()):.3g}]"
                )
            return (images * 255).round().to(torch.uint8)
        if images.dtype != torch.uint8:
            raise UserError(
                f"{where}: expected uint8 images (0..255), got {images.dtype}; pass "
                f"floats in [0, 1] with `normalize=True`"
            )
        return images

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """`metric(images, ...)` is `update(images, ...)`: these scores are of whole sets, not of one batch."""
        self.update(*args, **kwargs)

    @torch.no_grad()
    def _features(self, images: Tensor, real: bool) -> tuple[Tensor, Tensor]:
        """The features at this metric's tap of the images that count, and their positions in the run's order;
        in full fp32 whatever the caller's autocast and TF32 settings (they would move the scores)."""
        images = self._images(images)
        rank, world = _rank_and_world()
        positions = rank + world * (self._seen[real] + torch.arange(len(images)))
        self._seen[real] += len(images)
        limit = self.limits[real]
        keep = positions < limit if limit is not None else torch.ones(len(images), dtype=torch.bool)
        images, positions = images[keep], positions[keep]
        device = next(self.net.parameters()).device
        out = [torch.zeros(0, 1008 if self.tap == LOGITS else int(self.tap), device=device)]
        with full_fp32(device):
            for chunk in images.split(self.batch_size):
                x = self.convention.prepare_batch(chunk.to(device))
                out.append(tap_outputs(self.net, x, [self.tap])[self.tap])
        return torch.cat(out), positions.to(device)

    def reset(self) -> None:
        """Clear the state; with `reset_real_features=False`, keep the real side's (copied)."""
        real = {k: getattr(self, k) for k in REAL_STATES if hasattr(self, k)}
        kept = {k: v.clone() if isinstance(v, Tensor) else list(v) for k, v in real.items()}
        super().reset()
        self._seen = {True: 0, False: 0}
        if not self.reset_real_features:
            for k, v in kept.items():
                setattr(self, k, v)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _feature(feature: int) -> str:
    if feature not in DIMS:
        raise UserError(f"invalid `feature` {feature}; valid values: {', '.join(map(str, DIMS))}")
    return str(feature)


class FrechetInceptionDistance(_InceptionMetric):
    """FID between the real and the fake images seen (`update(images, real=...)`), in `convention`; the real side
    can be `reference` statistics instead (a file `save_stats` wrote, clean-fid's or torch-fidelity's, or a named
    reference), which `reset()` keeps, as it keeps the real images' sums with `reset_real_features=False`."""

    higher_is_better = False

    def __init__(
        self, feature: int = 2048, reset_real_features: bool = True, reference: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(_feature(feature), **kwargs)
        self.reset_real_features = reset_real_features and reference is None
        self.reference = read_reference(reference, self.convention.name, feature) if reference else None
        if self.reference is not None and self.reference.mu is None:  # a features-only file: its moments
            self.reference.mu, self.reference.sigma = statistics(self.reference.features, self.convention)  # type: ignore[arg-type]
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(feature, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(feature, feature, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images: Tensor, real: bool) -> None:
        if real and self.reference is not None:
            raise UserError(
                "this FrechetInceptionDistance compares with `reference` statistics: update it with fake images only"
            )
        f = self._features(images, real)[0].double()
        for name, value in (("sum", f.sum(0)), ("outer", f.T @ f), ("n", len(f))):
            state = f"{'real' if real else 'fake'}_{name}"
            setattr(self, state, getattr(self, state) + value)

    def _moments(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        if side == "real" and self.reference is not None:
            return self.reference.mu, self.reference.sigma  # type: ignore[return-value]
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            raise UserError(
                f"FID needs at least 2 {side} images; {n} were given to update() (compute() before update()?)"
            )
        mu = getattr(self, f"{side}_sum").cpu().numpy() / n
        sigma = (getattr(self, f"{side}_outer").cpu().numpy() - n * np.outer(mu, mu)) / (n - 1)
        return mu.astype(self.convention.mean_dtype), sigma

    def compute(self) -> Tensor:
        (mu1, s1), (mu2, s2) = self._moments("fake"), self._moments("real")
        return torch.tensor(fid_from_statistics(mu1, s1, mu2, s2, self.convention), dtype=torch.float64)


class _FeatureMetric(_InceptionMetric):
    """Metrics that keep each image's features (and its position or dataset index, to restore the order)."""

    sides: tuple[str, ...] = ("real", "fake")

    def __init__(self, tap: str, reset_real_features: bool = True, reference: str | None = None, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        self.reset_real_features = reset_real_features and reference is None
        self.reference = read_reference(reference, self.convention.name, int(tap), "kid") if reference else None
        if self.reference is not None and self.reference.features is None:
            raise UserError(f"{reference} holds no features, which {type(self).__name__} needs")
        for side in self.sides:
            for name in ("features", "order"):
                self.add_state(f"{side}_{name}", [], dist_reduce_fx="cat")

    def update(self, images: Tensor, real: bool = False, indices: Tensor | None = None) -> None:
        """Add a batch; `indices`: the images' indices in the dataset (each counts once, in index order)."""
        if real and self.reference is not None:
            raise UserError(
                f"this {type(self).__name__} compares with `reference` features: update it with fake images only"
            )
        features, positions = self._features(images, real)
        if indices is not None:
            if len(indices) != len(images) or self.limits[real] is not None:
                raise UserError("`indices` needs one index per image, and replaces `real_samples`/`fake_samples`")
            positions = torch.as_tensor(indices, device=features.device).long()
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(features.float())
        getattr(self, f"{side}_order").append(positions)

    def _gathered(self, side: str) -> np.ndarray:
        """A side's features in sample order (positions, or dataset indices: each once)."""
        if side == "real" and self.reference is not None:
            return self.reference.features  # type: ignore[return-value]
        state = getattr(self, f"{side}_features")  # a list, or after a sync across processes one tensor
        if (len(state) if isinstance(state, list) else state.numel()) == 0:
            raise UserError(
                f"{type(self).__name__}: no {side} images were given to update() (compute() before update()?)"
            )
        features = dim_zero_cat(state).cpu().numpy()
        order = dim_zero_cat(getattr(self, f"{side}_order")).cpu().numpy()
        _, first = np.unique(order, return_index=True)  # sorted by position or index; a repeated index once
        return features[first]


class KernelInceptionDistance(_FeatureMetric):
    """KID between the real and the fake images seen: `compute()` gives (mean, std) over the random subsets."""

    higher_is_better = False

    def __init__(
        self,
        feature: int = 2048,
        *,
        subsets: int = scores.KID_SUBSETS,
        subset_size: int = scores.KID_SUBSET_SIZE,
        degree: int = scores.KID_DEGREE,
        seed: int = scores.SEED,
        **kwargs: Any,
    ) -> None:
        super().__init__(_feature(feature), **kwargs)
        self.subsets, self.subset_size, self.degree, self.seed = subsets, subset_size, degree, seed

    def compute(self) -> tuple[Tensor, Tensor]:
        fake, real = self._gathered("fake"), self._gathered("real")
        mean, std = kernel_inception_distance(
            fake, real, self.convention, self.subsets, self.subset_size, self.degree, self.seed
        )
        return torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)


class InceptionScore(_FeatureMetric):
    """The Inception Score of the images seen (`update(images)`): `compute()` gives (mean, std) over the splits,
    on the logits without the fc bias, as torch-fidelity computes it."""

    higher_is_better = True
    sides = ("fake",)

    def __init__(
        self, splits: int = scores.IS_SPLITS, samples_shuffle: bool = True, seed: int = scores.SEED, **kwargs: Any
    ) -> None:
        super().__init__(LOGITS, **kwargs)
        self.splits, self.samples_shuffle, self.seed = splits, samples_shuffle, seed

    def update(self, images: Tensor, real: bool = False, indices: Tensor | None = None) -> None:
        if real:
            raise UserError("the Inception Score is of one set of images: update(images) without `real`")
        super().update(images, False, indices)

    def compute(self) -> tuple[Tensor, Tensor]:
        mean, std = inception_score(self._gathered("fake"), self.splits, self.samples_shuffle, self.seed)
        return torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)


class PrecisionRecall(_FeatureMetric):
    """Improved precision and recall of the fake images against the real ones: `compute()` gives (precision,
    recall, F-score), on Inception features as torch-fidelity computes them with `inception-v3-compat`."""

    higher_is_better = True

    def __init__(self, feature: int = 2048, neighborhood: int = 3, **kwargs: Any) -> None:
        super().__init__(_feature(feature), **kwargs)
        self.neighborhood = neighborhood

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:
        values = precision_recall(self._gathered("fake"), self._gathered("real"), self.neighborhood)
        return tuple(torch.tensor(v, dtype=torch.float64) for v in values)  # type: ignore[return-value]
