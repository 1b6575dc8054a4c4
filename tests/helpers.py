"""Helpers shared by the tests."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest
import torch
from torch import nn

from inception_v3.cli import main

CLI = [sys.executable, "-m", "inception_v3.cli"]  # the command, in a process of its own

# Floats computed along different paths (other batch shapes, thread counts or processes) differ in their last
# bits: convolution kernels pick their blocking per batch shape and CPU type. Measured on the Zen 4 and Zen 5
# EPYCs: logits 4.4e-7 relative between one batch of 12 and batches of 5, the Inception Score 3e-8.
CROSS_PATH_REL = 1e-6


def assert_close(actual: Mapping[str, float], expected: Mapping[str, float], rel: float = CROSS_PATH_REL) -> None:
    """Two results of the same computation done along different paths: the same keys, each value within `rel`.
    A standard deviation over splits (`X_std`) carries the absolute error of the values it spreads, so it is
    held to `rel` of its mean (`X_mean`): IS's std of 0.011 over scores of 1.027 moved by 1.1e-6 of itself."""
    assert set(actual) == set(expected), (sorted(actual), sorted(expected))
    for key, value in expected.items():
        scale = abs(expected.get(key.removesuffix("_std") + "_mean", value)) if key.endswith("_std") else abs(value)
        assert abs(actual[key] - value) <= rel * scale, (key, actual[key], value)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block on `n` threads (another path through the kernels than the suite's one thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def realistic_bn(model: nn.Module, size: int, passes: int = 3, batch: int = 4, channels: int = 3) -> nn.Module:
    """Give a randomly initialized model the batch-norm statistics of real use (a few forward passes in
    training mode on image-like inputs in [-1, 1]), then put it in eval mode."""
    g = torch.Generator().manual_seed(0)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # the plain average of the passes
    for _ in range(passes):
        model(torch.rand(batch, channels, size, size, generator=g) * 2 - 1)
    return model.eval()


def cli_in_process(args: list[str], capsys: pytest.CaptureFixture[str] | None = None) -> subprocess.CompletedProcess:
    """`inception-v3 ARGS` run in this process on one thread, as a command started with OMP_NUM_THREADS=1 runs
    (the same kernels, so the same bits), without the seconds a new process spends importing torch. With
    `capsys`, what it printed comes back as stdout and stderr."""
    threads = torch.get_num_threads()
    if capsys is not None:
        capsys.readouterr()
    torch.set_num_threads(1)
    try:
        code = main(args)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr() if capsys is not None else None
    return subprocess.CompletedProcess(args, code, out.out if out else "", out.err if out else "")
