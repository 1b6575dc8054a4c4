"""The scores generative models are judged by, computed from Inception features as the reference tools
compute them: Inception Score, Frechet Inception Distance, Kernel Inception Distance, precision/recall.

Each function follows one tool's arithmetic exactly (dtypes, random streams, estimators); which one is a
`Convention` (conventions.py): equal inputs give the tool's numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .conventions import Convention

# torch-fidelity's defaults, which every convention's settings and metric objects start from
SEED, IS_SPLITS, KID_SUBSETS, KID_SUBSET_SIZE, KID_DEGREE = 2020, 10, 100, 1000, 3


def inception_score(
    logits: np.ndarray, splits: int = IS_SPLITS, shuffle: bool = True, seed: int = SEED
) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split of the (optionally shuffled) samples, in float64; the
    mean and (population) standard deviation over the splits. `logits`: N x classes, without the fc bias
    (torch-fidelity's `logits_unbiased`)."""
    n = len(logits)
    if n < splits:
        raise UserError(f"the Inception Score needs at least `isc_splits` ({splits}) images, got {n}")
    x = torch.from_numpy(logits)
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    x = x.double()
    p, log_p = x.softmax(1), x.log_softmax(1)
    scores = []
    for i in range(splits):
        part, log_part = p[i * n // splits : (i + 1) * n // splits], log_p[i * n // splits : (i + 1) * n // splits]
        q = part.mean(0, keepdim=True)
        scores.append((part * (log_part - q.log())).sum(1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def statistics(features: np.ndarray, convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Mean (in the convention's dtype) and covariance (float64, N - 1) of N x D float32 features."""
    mu = np.mean(features.astype(convention.mean_dtype), axis=0)
    return mu, np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
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


def fid_from_statistics(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, convention: Convention
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)); the trace of the root by scipy's sqrtm (pytorch-fid,
    clean-fid) or as the sum of the roots of the product's eigenvalues (torch-fidelity)."""
    if mu1.shape != mu2.shape:
        raise UserError(f"the two inputs' features have different sizes ({len(mu1)} vs {len(mu2)}); use one tap")
    if convention.fid_trace == "sqrtm":
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(sigma1.dot(sigma2)).astype("complex128")).real)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def kernel_inception_distance(
    f1: np.ndarray,
    f2: np.ndarray,
    convention: Convention,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = 3,
    seed: int = SEED,
) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the kernel (x.y / dim + 1)^degree, in float32, averaged over `subsets`
    random subsets of `subset_size` from each input (drawn without replacement from one stream seeded with
    `seed`); mean and (population) standard deviation over the subsets. torch-fidelity draws from input 1
    first and sums per kernel; clean-fid draws from input 2 first, sums the two within-set kernels together
    and accumulates the mean in float32: each convention does as its tool does."""
    n1, n2 = len(f1), len(f2)
    if convention.kid_style == "clean-fid":  # clean-fid takes smaller subsets when an input is smaller
        subset_size = min(n1, n2, subset_size)
    if min(n1, n2) < subset_size or subset_size < 2:
        raise UserError(
            f"KID subsets of {subset_size} images need that many in each input, but they have {n1} "
            f"and {n2}; lower `kid_subset_size` to at most {min(n1, n2)}"
        )
    rng = np.random.RandomState(seed)
    m, dim = subset_size, f1.shape[1]
    mmds, total = np.zeros(subsets), np.float32(0)
    for i in range(subsets):
        if convention.kid_style == "torch-fidelity":
            x = f1[rng.choice(n1, m, replace=False)]
            y = f2[rng.choice(n2, m, replace=False)]
            k_xx, k_yy, k_xy = ((np.matmul(a, b.T) * (1.0 / dim) + 1) ** degree for a, b in ((x, x), (y, y), (x, y)))
            within = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum() + (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
            mmds[i] = within / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m)
        else:
            x = f2[rng.choice(n2, m, replace=False)]
            y = f1[rng.choice(n1, m, replace=False)]
            a = (x @ x.T / dim + 1) ** degree + (y @ y.T / dim + 1) ** degree
            b = (x @ y.T / dim + 1) ** degree
            term = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
            total += term
            mmds[i] = term / m
    mean = total / subsets / m if convention.kid_style == "clean-fid" else np.mean(mmds)
    return float(mean), float(np.std(mmds))


def precision_recall(
    f1: np.ndarray, f2: np.ndarray, neighborhood: int = 3, block: int = 10000
) -> tuple[float, float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019), as torch-fidelity computes them: input 1 is
    the generated set, input 2 the real one; a sample lies in a set's manifold if it is within some member's
    distance to its `neighborhood`-th nearest neighbour. The distances are torch-fidelity's (torch.cdist on
    blocks of `block` x `block`), held `block` rows at a time. Returns precision, recall and their F-score."""
    if min(len(f1), len(f2)) <= neighborhood:
        raise UserError(
            f"precision/recall with `prc_neighborhood` {neighborhood} needs more than {neighborhood} "
            f"images in each input, got {len(f1)} and {len(f2)}"
        )
    a, b = torch.from_numpy(f1), torch.from_numpy(f2)
    radius_1 = torch.cat([_rows(x, a, block).kthvalue(neighborhood + 1).values for x in a.split(block)])
    radius_2 = torch.cat([_rows(y, b, block).kthvalue(neighborhood + 1).values for y in b.split(block)])
    recalled, covered = [], torch.zeros(len(a), dtype=torch.bool)
    for y, r2 in zip(b.split(block), radius_2.split(block), strict=True):
        d = _rows(y, a, block)  # real x generated distances, this block of real rows
        recalled.append((d <= radius_1).any(dim=1))
        covered |= (d <= r2[:, None]).any(dim=0)
    recall = torch.cat(recalled).float().mean().item()
    precision = covered.float().mean().item()
    return precision, recall, 2 * precision * recall / max(1e-5, precision + recall)


def _rows(x: torch.Tensor, y: torch.Tensor, block: int) -> torch.Tensor:
    """Distances from the rows of `x` to every row of `y` (torch.cdist over `y`'s blocks)."""
    return torch.cat([torch.cdist(x, part) for part in y.split(block)], dim=1)
