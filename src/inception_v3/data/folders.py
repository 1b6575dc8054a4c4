"""Image files as sources: a folder (recursive; with one sub-folder per class it is labeled, as torchvision's
`ImageFolder` reads it), a zip file, and the file, folder and glob arguments of `predict` and `features`.

Files come in sorted path order, as torch-fidelity, clean-fid and pytorch-fid list a folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .image_io import IMAGE_SUFFIXES, Encoded, Stored, is_image_file
from .sources import COLUMNS, ImageSource


def class_folders(paths: list[tuple[str, ...]]) -> tuple[list[str] | None, np.ndarray | None]:
    """Class names and labels of relative file paths (as parts) when every file lies inside a sub-folder, the
    sub-folder being its class (sorted names, as `ImageFolder` numbers them); else (None, None)."""
    if not paths or any(len(p) < 2 for p in paths):
        return None, None
    classes = sorted({p[0] for p in paths})
    index = {c: k for k, c in enumerate(classes)}
    return classes, np.array([index[p[0]] for p in paths], dtype=np.int64)


class FileImages(ImageSource):
    """Image files by index, with their labels and class names when they have them."""

    def __init__(
        self,
        files: list[Path],
        name: str,
        classes: list[str] | None = None,
        labels: np.ndarray | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.files, self.name, self.classes, self.labels, self.fingerprint = files, name, classes, labels, fingerprint

    def __len__(self) -> int:
        return len(self.files)

    def stored(self, i: int) -> Stored:
        return Encoded.read(self.files[i])

    def item_name(self, i: int) -> str:
        return str(self.files[i])


def image_files(folder: Path) -> list[Path]:
    """A folder's image files, recursively (symbolic links to folders followed, as `ImageFolder` follows them),
    in sorted path order; macOS's metadata files (`._x.png`, `__MACOSX/`) are not images."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__MACOSX"]
        files += [Path(root) / n for n in names if is_image_file(n) and not n.startswith("._")]
    return sorted(files, key=str)


def open_folder(spec: str, columns: tuple[str, str] = COLUMNS) -> FileImages:
    """A folder of images. When every image lies inside a sub-folder (none beside them), the sub-folders are
    the classes (sorted names), as `ImageFolder` reads a tree."""
    folder = Path(spec)
    if not folder.is_dir():
        raise UserError(f"image folder {spec} does not exist")
    files = image_files(folder)
    if not files:
        raise UserError(f"{spec} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}, in sub-folders too)")
    rel = [f.relative_to(folder) for f in files]
    classes, labels = class_folders([r.parts for r in rel])
    digest = hashlib.sha256()  # fed file by file: a folder of millions of images is never one string
    for r, f in zip(rel, files, strict=True):
        st = f.stat()
        digest.update(f"{r}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return FileImages(files, spec, classes, labels, f"folder:{folder.resolve()}:{digest.hexdigest()}")


def open_inputs(inputs: list[str]) -> FileImages:
    """Files, folders (their images, recursively) and glob patterns, in the order given (each folder's and
    glob's files sorted); unlabeled."""
    paths: list[Path] = []
    for item in map(str, inputs):
        matches = sorted(glob.glob(item)) if any(ch in item for ch in "*?[") else [item]
        if not matches:
            raise UserError(f"no file matches {item}")
        for m in map(Path, matches):
            if m.is_dir():
                paths += image_files(m)
            elif m.is_file():
                paths.append(m)
            else:
                raise UserError(f"{m} does not exist")
    if not paths:
        raise UserError(f"no images found in {' '.join(inputs)}")
    return FileImages(paths, " ".join(inputs))


class ZipImages(ImageSource):
    """The image members of a zip file (sorted), opened once per process (DataLoader workers each open their own);
    labeled as a folder is, below the one folder that holds everything when there is one (`zip -r x.zip x/`)."""

    def __init__(self, path: Path, members: list[str], fingerprint: str) -> None:
        self.path, self.members, self.name, self.fingerprint = path, members, str(path), fingerprint
        parts = [tuple(m.split("/")) for m in members]
        if len({p[0] for p in parts}) == 1 and all(len(p) > 1 for p in parts):
            parts = [p[1:] for p in parts]
        self.classes, self.labels = class_folders(parts)
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.members)

    def __getstate__(self) -> dict[str, Any]:  # the open file stays with its process
        return {**self.__dict__, "_zip": None, "_pid": -1}

    def stored(self, i: int) -> Stored:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return Encoded(self._zip.read(self.members[i]), self.item_name(i))

    def item_name(self, i: int) -> str:
        return f"{self.path}:{self.members[i]}"


def open_zip(spec: str, columns: tuple[str, str] = COLUMNS) -> ZipImages:
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"zip file {spec} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if is_image_file(n) and not n.startswith("__MACOSX/")]
            members = sorted(n for n in names if not n.rpartition("/")[2].startswith("._"))
    except zipfile.BadZipFile:
        raise UserError(f"{spec} is not a zip file (or it is damaged)") from None
    if not members:
        raise UserError(f"{spec} holds no images")
    st = path.stat()
    return ZipImages(path, members, f"zip:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
