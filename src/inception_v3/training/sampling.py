"""Data order and augmentation as functions of (seed, epoch, index), so a resumed run sees exactly the
images, crops and flips the uninterrupted one would have, under any number of workers or replicas."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.datasets import collate
from .distributed import Dist


class SeededSamples(Dataset):
    """Wraps a dataset so each sample's random augmentation depends only on (seed, key), with keys
    epoch * len + index: the same image gets the same crop in a resumed run."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.n = dataset, seed, len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + key)
            return self.dataset[key % self.n]


def epoch_batches(n: int, batch: int, d: Dist, seed: int, epoch: int, start: int) -> list[list[int]]:
    """This replica's batches (as sample keys) for `epoch`, from batch number `start` on: one permutation per
    (seed, epoch); global batch k is permutation[k*B : (k+1)*B] with B = batch x world, and replica r takes
    every world-th sample of it."""
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    perm = (torch.randperm(n, generator=g) + epoch * n).tolist()
    global_batch = batch * d.world
    return [perm[k * global_batch : (k + 1) * global_batch][d.rank :: d.world] for k in range(start, n // global_batch)]


def make_loader(dataset: Dataset, batches: Any, workers: int, d: Dist) -> DataLoader:
    """A loader over precomputed batches. Its own generator keeps it from drawing on the global RNG
    (which dropout uses and checkpoints restore)."""
    pin = d.device.type == "cuda"
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        generator=torch.Generator(),
    )


def val_loader(dataset: Dataset, batch_size: int, workers: int, d: Dist) -> DataLoader:
    """This replica's share of the validation set, in order, in batches of `batch_size`."""
    shard = list(range(d.rank, len(dataset), d.world))  # type: ignore[arg-type]
    batches = [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]
    return make_loader(dataset, batches, workers, d)
