"""The run folder (OUT_DIR/NAME): refusing to clobber another run, and its metrics log."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..errors import UserError
from ..utils.io import atomic_write_text, remove_stale_temp_files
from .checkpoints import latest_good_checkpoint, step_checkpoints
from .distributed import Dist
from .settings import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "report.md", "checkpoints", "best.pt", "final.json", "plots", "tb")
RESUME_MODES = ("no", "yes", "auto")

log = logging.getLogger(__name__)


@dataclass
class RunDir:
    """OUT_DIR/NAME as this invocation found it: the checkpoint to continue from (None: a new run), and
    whether this invocation creates the folder (then a failure before the first checkpoint removes it)."""

    path: Path
    checkpoint: tuple[Path, dict[str, Any]] | None
    created: bool


def prepare_run_dir(cfg: TrainConfig, resume: str, overwrite: bool, d: Dist) -> RunDir:
    """Decide what OUT_DIR/NAME holds for this run. resume "yes": continue from its newest readable
    checkpoint (or fail); "auto": continue if there is one, else start; "no": start, refusing to touch
    another run's files unless `overwrite`. Temp files of killed writes are removed first."""
    if resume not in RESUME_MODES:
        raise UserError(f"invalid `resume` {resume!r}; valid values: {', '.join(RESUME_MODES)}")
    run_dir = Path(cfg.out_dir) / cfg.name
    if d.main:
        stale = remove_stale_temp_files(run_dir) + remove_stale_temp_files(run_dir / "checkpoints")
        if stale:
            log.warning(f"removed {len(stale)} temporary file(s) of an interrupted write in {run_dir}")
    if d.world > 1:
        dist.barrier()
    found = None
    if resume != "no":
        # read to the CPU: load_state_dict moves weights to the model's device, and the generators' states
        # must stay CPU tensors (torch.set_rng_state takes nothing else)
        found = latest_good_checkpoint(run_dir, map_location="cpu", warn=log.warning if d.main else lambda _: None)
        damaged = found is None and bool(step_checkpoints(run_dir))
        if found is None and (resume == "yes" or damaged):
            what = "every checkpoint is damaged" if damaged else "it has no checkpoints"
            raise UserError(
                f"nothing to resume in {run_dir}: {what}; start again with `overwrite=True`"
                + ("" if damaged else " or use `resume='auto'`")
            )
    existing = [f for f in RUN_FILES if (run_dir / f).exists()]
    if found is None and existing and not (overwrite or resume == "auto"):
        raise UserError(
            f"{run_dir} already holds a run ({', '.join(existing)}); "
            f"pass `resume='yes'` to continue it or `overwrite=True` to replace it"
        )
    created = not run_dir.exists()
    if found is None and existing and d.main:  # --overwrite, or --resume auto over a run that never checkpointed
        for f in existing:
            _remove_keeping_evidence(run_dir / f)
    if d.world > 1:
        dist.barrier()
    return RunDir(run_dir, found, created)


def _remove_keeping_evidence(path: Path) -> None:
    """Delete a run file or folder, except tampered files moved aside as evidence (`*.tampered*`)."""
    if not path.is_dir():
        path.unlink()
        return
    for child in path.iterdir():
        if ".tampered" not in child.name:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if not any(path.iterdir()):
        path.rmdir()


@contextmanager
def removed_if_failed_early(rd: RunDir, d: Dist) -> Iterator[None]:
    """A run that fails before its first checkpoint leaves no folder behind (if this invocation made it)."""
    try:
        yield
    except BaseException:
        if d.main and rd.created and not step_checkpoints(rd.path):
            shutil.rmtree(rd.path, ignore_errors=True)
        raise


class Logger:
    """metrics.jsonl (+ TensorBoard when installed), written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, run_dir / "metrics.jsonl", None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            with suppress(ImportError):
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))

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
