"""Files: atomic writes (temp file + rename) and loading .pt files without unpickling code.

A file written here is either the complete new file or the old one, never a partial one; a killed
write leaves only a `.NAME.*.tmp` file beside it, which `remove_stale_temp_files` cleans up.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import TamperedFile, UserError, reason
from .pickles import code_globals, quarantine

TEMP_SUFFIX = ".tmp"


def cache_root() -> Path:
    """This project's cache: $INCEPTION_V3_CACHE, else ~/.cache/inception-v3."""
    return Path(os.environ.get("INCEPTION_V3_CACHE") or Path.home() / ".cache" / "inception-v3")


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
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


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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


def load_torch_file(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                    what: str = "checkpoint") -> Any:  # fmt: skip
    """`torch.load(weights_only=True)`; a missing, damaged or unsafe file is one UserError line. A file that
    would run code on load (`pickles.code_globals`) is moved aside as evidence and raises TamperedFile."""
    path = Path(path)
    if not path.is_file():
        moved = path.with_name(f"{path.name}.tampered")
        if moved.is_file():  # another replica of the same run moved it a moment ago
            raise TamperedFile(f"refusing {what} {path}: it would run code when loaded; kept as evidence at {moved}")
        raise UserError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's "Detected pickle protocol" note on foreign files: ours below
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        code = code_globals(path)
        if code:
            moved = quarantine(path)
            raise TamperedFile(f"refusing {what} {path}: loading it would run {', '.join(dict.fromkeys(code))}; "
                               f"nothing writes code into a {what} by accident, so someone changed it. Kept as "
                               f"evidence at {moved}; nothing was loaded") from None  # fmt: skip
        blocked = re.search(r"GLOBAL (\S+)", str(exc))
        if blocked:
            raise UserError(f"cannot read {what} {path}: it holds {blocked.group(1)} objects, and {what}s may only "
                            f"hold tensors and plain data (another tool's file?)") from None  # fmt: skip
        raise UserError(f"cannot read {what} {path}: not a PyTorch file, or damaged") from None
    except Exception as exc:  # torch.load raises many types on damaged bytes (zip, storage, pickle errors)
        raise UserError(f"cannot read {what} {path}: {reason(exc)} (damaged or not a PyTorch file)") from None
