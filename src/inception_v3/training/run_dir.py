"""The run folder (OUT_DIR/NAME): refusing to clobber another run, and its metrics log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..errors import UserError
from ..utils.io import atomic_write_text
from .checkpoints import step_checkpoints
from .distributed import Dist
from .settings import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "report.md", "checkpoints", "best.pt", "final.json", "plots", "tb")


def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool, d: Dist) -> Path:
    """runs/NAME: refuse to touch another run's files unless --resume or --overwrite."""
    run_dir = Path(cfg.out_dir) / cfg.name
    existing = [f for f in RUN_FILES if (run_dir / f).exists()]
    if resume:
        if not step_checkpoints(run_dir):
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoints; drop --resume to start a new run")
    elif existing and not overwrite:
        raise UserError(f"{run_dir} already holds a run ({', '.join(existing)}); "
                        f"pass --resume to continue it or --overwrite to replace it")  # fmt: skip
    elif existing and d.main:
        for f in existing:
            path = run_dir / f
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if d.world > 1:
        dist.barrier()
    return run_dir


class Logger:
    """metrics.jsonl (+ TensorBoard when installed), written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, run_dir / "metrics.jsonl", None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.tb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (written after the checkpoint a resumed run starts from)."""
        if self.enabled and self.path.exists():
            keep = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= step]
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
