"""CPU peak memory per model: each (model, setting) runs two steps in a fresh Python process and
reports that process's peak resident set size (torch itself included, the same for all three), since
one process's allocator caches make in-process measurements meaningless on CPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .throughput import Setting, candidate, candidate_names


def peak_rss_mib(name: str, s: Setting, size: int = 299) -> float:
    """Peak RSS (MiB) of a fresh process that builds `name` and runs two steps of `s`."""
    spec = json.dumps({"name": name, "setting": {k: getattr(s, k) for k in ("task", "dtype", "layout", "mode",
                                                                           "batch")}, "size": size})  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory", spec], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure_memory(settings: list[Setting], int8: bool, log: Callable[[str], None] = print,
                   only: tuple[str, ...] | None = None) -> dict[str, Any]:  # fmt: skip
    """setting key -> candidate -> peak RSS in MiB, plus the baseline of a process that only imports torch;
    `only`: these candidates (the smoke profile measures one)."""
    result: dict[str, Any] = {"baseline_mib": peak_rss_mib("none", settings[0])}
    for s in settings:
        names = [n for n in candidate_names(s, torch.device("cpu"), int8) if only is None or n in only]
        result[s.key] = {n: peak_rss_mib(n, s) for n in names}
        log(f"memory {s.key}  " + "  ".join(f"{n} {v:.0f} MiB" for n, v in result[s.key].items()))
    return result


def _child(spec: dict[str, Any]) -> None:
    if spec["name"] != "none":
        s = Setting(**spec["setting"])
        size = spec["size"]
        calibration = torch.randn(8, 3, size, size) if spec["name"] == "ours-int8" else None
        c = candidate(spec["name"], s, torch.device("cpu"), calibration)
        x = torch.randn(s.batch, 3, size, size)
        x = x.contiguous(memory_format=torch.channels_last) if c.channels_last else x
        y = torch.randint(0, 1000, (s.batch,))
        for _ in range(2):
            c.step(x, y)
    # VmHWM (this address space's high-water mark) rather than ru_maxrss, which a child inherits from
    # its parent across fork + exec.
    status = Path("/proc/self/status").read_text()
    print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
