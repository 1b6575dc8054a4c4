"""Helpers shared by the tests."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from inception_v3.cli import main

CLI = [sys.executable, "-m", "inception_v3.cli"]  # the command, in a process of its own


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
