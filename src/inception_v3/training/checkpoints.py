"""Training checkpoints: what one holds, writing them (atomically, keeping the last K) and reading them.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
`torch.load(weights_only=True)`; anything else in a file is refused.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..errors import TamperedFile, UserError
from ..utils.io import StrPath, atomic_write, load_torch_file

CHECKPOINT_FORMAT = "inception-v3/checkpoint/1"
REQUIRED_KEYS = {"model", "ema", "optimizer", "rng", "step", "classes", "model_config", "train_config"}


def save_checkpoint(state: dict[str, Any], path: StrPath) -> None:
    """Write `state` atomically: a crash mid-write leaves the previous file intact. It is serialized in
    memory first, so a full disk is an OSError with its errno (torch.save would hide it in a RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))


def load_checkpoint(path: StrPath, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a missing, damaged or unsafe file is a UserError."""
    state = load_torch_file(path, map_location, "checkpoint")
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a checkpoint of this project (found {type(state).__name__})")
    return state


def step_checkpoints(run_dir: Path) -> list[Path]:
    """checkpoints/step-*.pt, oldest first."""
    return sorted((run_dir / "checkpoints").glob("step-*.pt"))


def latest_good_checkpoint(
    run_dir: Path, map_location: str | torch.device = "cpu", warn: Callable[[str], None] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that reads back as a complete checkpoint of this project, and its
    contents; damaged ones (truncated, empty, not ours) are skipped with a line through `warn`. A tampered
    one (it would run code) stops the search: TamperedFile, the file moved aside as evidence."""
    warn = warn or logging.getLogger(__name__).warning
    if evidence := sorted((run_dir / "checkpoints").glob("*.tampered*")):
        raise TamperedFile(
            f"{run_dir} holds a checkpoint that would run code when loaded, kept as evidence at {evidence[0]}; "
            "look at it, then move it out of the run folder to resume from the checkpoint before"
        )
    for path in reversed(step_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path, map_location)
            if state.get("format") != CHECKPOINT_FORMAT or not state.keys() >= REQUIRED_KEYS:
                raise UserError(f"{path} is not a complete training checkpoint of this project")
            return path, state
        except TamperedFile:
            raise
        except UserError as exc:
            warn(f"skipping damaged checkpoint {path.name}: {exc}; trying the one before")
    return None


def write_checkpoint(run_dir: Path, state: dict[str, Any], keep_last: int) -> Path:
    """checkpoints/step-NNNNNNNN.pt, keeping the newest `keep_last`."""
    path = run_dir / "checkpoints" / f"step-{state['step']:08d}.pt"
    save_checkpoint(state, path)
    for old in step_checkpoints(run_dir)[:-keep_last]:
        old.unlink()
    return path


def rng_state() -> dict[str, Any]:
    """This process's random generators that training draws from (dropout): the CPU one, and its own
    GPU's (not every visible GPU's: a replica uses one), as CPU tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def all_rng_states() -> list[dict[str, Any]]:
    """Every replica's `rng_state()`, in rank order (a collective under torch.distributed: call on all ranks)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [rng_state()]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


def set_rng_state(saved: list[dict[str, Any]] | dict[str, Any], rank: int = 0) -> None:
    """Restore this replica's generators from a checkpoint's per-rank states (read to the CPU). A run
    restarted with more replicas than it saved gives the new ones rank 0's (exact resume needs the same
    number of replicas anyway, as the data shares depend on it)."""
    states = saved if isinstance(saved, list) else [saved]  # checkpoints before per-rank states held one
    state = states[rank] if rank < len(states) else states[0]
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if isinstance(cuda, list):  # written before per-rank states: rank 0's list of every visible GPU's state
        index = torch.cuda.current_device() if torch.cuda.is_available() else -1
        cuda = cuda[index] if 0 <= index < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())
