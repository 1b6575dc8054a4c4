"""Files: atomic writes (temp file + rename) and loading .pt files without unpickling code.

A file written here is either the complete new file or the old one, never a partial one; a killed
write leaves only a `.NAME.*.tmp` file beside it, which `remove_stale_temp_files` cleans up.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

from ..errors import TamperedFile, UserError, reason
from .pickles import code_globals, evidence, pickle_globals, quarantine

TEMP_SUFFIX = ".tmp"
StrPath: TypeAlias = str | os.PathLike[str]  # a path as text or a Path


def cache_root() -> Path:
    """This project's cache: $INCEPTION_V3_CACHE, else ~/.cache/inception-v3."""
    return Path(os.environ.get("INCEPTION_V3_CACHE") or Path.home() / ".cache" / "inception-v3")


def atomic_write(path: StrPath, write: Callable[[str], Any]) -> None:
    """Call `write(temp_path)` on a temp file in the same folder, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: StrPath, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_savez(path: StrPath, arrays: dict[str, Any]) -> None:
    """`np.savez(**arrays)` to exactly `path` (no ".npz" appended), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # closed (flushed) before atomic_write syncs and renames it
            np.savez(f, **arrays)

    atomic_write(path, write)


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files that killed `atomic_write` calls left in `folder`; returns them."""
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_torch_file(path: StrPath, map_location: str | torch.device = "cpu", what: str = "checkpoint") -> Any:
    """`torch.load(weights_only=True)`; a missing, damaged or unsafe file is one UserError line. A file that
    would run code on load (`pickles.code_globals`) is moved aside as evidence and raises TamperedFile."""
    path = Path(path)
    if not path.is_file():
        if moved := evidence(path):  # another replica of the same run moved it a moment ago
            raise TamperedFile(
                f"refusing {what} {path}: it would run code when loaded; kept as evidence at {moved[-1]}"
            )
        raise UserError(f"{what} {path} does not exist")
    try:
        data = path.read_bytes()  # read once: the bytes loaded are the bytes scanned
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {reason(exc)}") from None
    try:
        with warnings.catch_warnings():  # torch's note on a foreign file's pickle protocol: ours says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL (\S+)", str(exc))  # the first global torch refused, as it resolved it
        code = code_globals(pickle_globals(data) + ([blocked.group(1)] if blocked else []))
        if code:
            raise TamperedFile(_tampered(path, what, code)) from None
        if blocked:
            raise UserError(
                f"cannot read {what} {path}: it holds {blocked.group(1)} objects, and {what}s may only "
                f"hold tensors and plain data (another tool's file?)"
            ) from None
        raise UserError(f"cannot read {what} {path}: not a PyTorch file, or damaged") from None
    except Exception as exc:  # torch.load raises many types on damaged bytes (zip, storage, pickle errors)
        raise UserError(f"cannot read {what} {path}: {reason(exc)} (damaged or not a PyTorch file)") from None


def refuse_if_tampered(path: Path, what: str) -> None:
    """Raise TamperedFile (the file moved aside) if `path` holds a pickle that would run code; before a file
    that failed its checksum is replaced or removed, so that the evidence is kept."""
    try:
        code = code_globals(pickle_globals(path.read_bytes()))
    except OSError:
        return
    if code:
        raise TamperedFile(_tampered(path, what, code))


def _tampered(path: Path, what: str, code: list[str]) -> str:
    """Move a file that would run code aside and say so, in one line."""
    moved = quarantine(path) or next(reversed(evidence(path)), None)  # (or another replica moved it first)
    kept = f"kept as evidence at {moved}" if moved else f"it could not be moved aside and stays at {path}, untouched"
    return (
        f"refusing {what} {path}: loading it would run {', '.join(code)}; nothing writes code into a {what} by "
        f"accident, so someone changed it; {kept}; nothing was loaded"
    )
