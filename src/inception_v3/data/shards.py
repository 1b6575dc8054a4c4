"""WebDataset tar shards read map-style, by index: the seeded sampler, `--classes`, `--train-subset`, exact
resume and each replica's share work exactly as with image folders.

A sample is the tar members that share a key (the member name up to the first dot of its base name, as
webdataset groups them): an image (`jpg`, `jpeg`, `png`, `webp`) and a label (`cls`, or `label` in a
`json`). Each shard's headers and labels are indexed once and the index cached, so shards written by
webdataset's own `ShardWriter` need no extra file. Class names come from `classes.txt` (one per line) or
`classes.json` beside the shards when there is one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from ..errors import UserError
from ..utils.io import atomic_write_text, cache_root
from .image_io import BadSample, read_image

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
OPEN_SHARDS = 32  # open shard files per process at most (1,024 shards x 8 workers x 8 replicas would exhaust ulimits)
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # key = path up to the first dot of the base name
_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """`train-{000000..000003}.tar` and `{a,b}` expanded as webdataset (braceexpand) does, zero padding kept."""
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    body, head, tail = m.group(1), pattern[: m.start()], pattern[m.end() :]
    if ".." in body:
        lo, hi = body.split("..", 1)
        if not (lo.isdigit() and hi.isdigit()):
            raise UserError(f"invalid range {{{body}}} in {pattern!r}: expected {{000000..000099}}")
        width = len(lo) if lo.startswith("0") else 0
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [name for option in options for name in expand_braces(head + option + tail)]


def shard_paths(data_dir: str | None, pattern: str | None, option: str) -> list[Path]:
    """The shard files `pattern` (braces expanded) names under `data_dir`; all must exist. `option`: the
    command-line option the pattern came from, for messages."""
    if not pattern:
        raise UserError(f"--dataset wds needs {option}, a shard pattern such as 'train-{{000000..000099}}.tar'")
    names = expand_braces(pattern)
    paths = [Path(data_dir or ".") / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        raise UserError(f"{option} {pattern!r} matches no shard in {data_dir or '.'}")
    if missing:
        raise UserError(f"shard {missing[0]} is missing ({len(missing)} of the {len(paths)} shards of {pattern!r})")
    return paths


def index_shard(path: Path) -> list[tuple[str, int, int, int]]:
    """(key, image offset, image size, label) of every sample in a shard, from its headers and small
    members; cached under $INCEPTION_V3_CACHE/wds-index by (path, size, modification time)."""
    st = path.stat()
    ident = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cached = cache_root() / "wds-index" / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"
    if cached.is_file():
        return [tuple(row) for row in json.loads(cached.read_text())]  # type: ignore[misc]
    samples: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                m = _KEY.match(member.name)
                if not member.isfile() or m is None:
                    continue
                key, ext = m.group(1), m.group(2).lower()
                entry = samples.setdefault(key, {})
                if ext in IMAGE_EXTENSIONS:
                    entry["image"] = (member.offset_data, member.size)
                elif ext in ("cls", "json"):
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    entry["label"] = _label(data, ext, path, key)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"shard {path} is truncated or not a tar file ({type(exc).__name__}: {exc}); "
                        f"write it again or leave it out of the pattern") from None  # fmt: skip
    rows = []
    for key, entry in samples.items():
        if "image" not in entry:
            continue  # a sample without an image (metadata only) is not an image sample
        if "label" not in entry:
            raise UserError(f"sample {key} in shard {path} has no label (no .cls member, no 'label' in a .json)")
        rows.append((key, *entry["image"], entry["label"]))
    atomic_write_text(cached, json.dumps(rows))
    return rows


def _label(data: bytes, ext: str, path: Path, key: str) -> int:
    try:
        if ext == "cls":
            return int(data.decode().strip())
        meta = json.loads(data)
        return int(meta["label"] if "label" in meta else meta["cls"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"sample {key} in shard {path} has no readable label in its .{ext}") from None


def class_names(folder: Path, labels: list[int]) -> list[str]:
    """Names from classes.txt / classes.json beside the shards, else the label numbers."""
    if (folder / "classes.txt").is_file():
        names = [line.strip() for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    elif (folder / "classes.json").is_file():
        names = [str(n) for n in json.loads((folder / "classes.json").read_text())]
    else:
        names = [str(i) for i in range(max(labels) + 1)]
    if labels and max(labels) >= len(names):
        raise UserError(f"a sample in {folder} has label {max(labels)} but the class list names {len(names)}")
    return names


class ShardDataset(Dataset):
    """The samples of a list of shards, by index (shard order, then member order), transformed like an
    image folder's; an image that does not decode is a BadSample named by shard and key."""

    def __init__(self, shards: list[Path], transform: Callable[[Tensor], Tensor]) -> None:
        self.shards, self.transform = shards, transform
        self.items: list[tuple[int, str, int, int]] = []
        labels: list[int] = []
        for s, shard in enumerate(shards):
            for key, offset, size, label in index_shard(shard):
                self.items.append((s, key, offset, size))
                labels.append(label)
        self.samples = [(f"{shards[s]}:{key}", y) for (s, key, _, _), y in zip(self.items, labels, strict=True)]
        self._files: dict[int, Any] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:  # open files stay with their process
        return {**self.__dict__, "_files": {}, "_pid": -1}

    def _read(self, s: int, offset: int, size: int) -> bytes:
        if self._pid != os.getpid():  # a DataLoader worker opens its own files
            self._files, self._pid = {}, os.getpid()
        f = self._files.pop(s, None)
        if f is None:
            if len(self._files) >= OPEN_SHARDS:  # the least recently read one goes
                self._files.pop(next(iter(self._files))).close()
            f = open(self.shards[s], "rb")  # noqa: SIM115
        self._files[s] = f  # most recently read last
        f.seek(offset)
        return f.read(size)

    def __getitem__(self, i: int) -> Any:
        s, key, offset, size = self.items[i]
        name = f"{self.shards[s]}:{key}"
        try:
            image = read_image(io.BytesIO(self._read(s, offset, size)), name)
        except UserError as exc:
            return BadSample(name, str(exc))
        return self.transform(image), self.samples[i][1]


def write_shards(src: str, out: str, max_count: int = 10000, max_size: float = 3e9, overwrite: bool = False
                 ) -> dict[str, Any]:  # fmt: skip
    """WebDataset shards of an image folder (SRC/train, SRC/val, one sub-folder per class) with webdataset's
    `ShardWriter`: OUT/train-000000.tar ..., OUT/val-000000.tar ... and OUT/classes.txt. Samples keep the
    folder order (class, then file name), so a run from the shards sees the images in the order of a run
    from the folder. Each sample holds the file's own bytes (`jpg`, `png`, ...) and its class index (`cls`)."""
    try:
        import webdataset
    except ImportError:
        raise UserError("writing shards needs webdataset: pip install 'inception-v3[wds]'") from None
    from torchvision.datasets import ImageFolder

    from .image_io import is_image_file

    dst = Path(out)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise UserError(f"{dst} is not empty; choose another folder or pass --overwrite")
    folders = {split: Path(src) / split for split in ("train", "val")}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} does not exist: SRC must hold train/ and val/, one sub-folder per class")
    trees = {split: ImageFolder(str(f), is_valid_file=is_image_file, allow_empty=True) for split, f in folders.items()}
    classes = trees["train"].classes
    if trees["val"].classes != classes:
        raise UserError(f"{src}: train/ and val/ have different class folders")
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, tree in trees.items():
        with webdataset.ShardWriter(str(dst / f"{split}-%06d.tar"), maxcount=max_count, maxsize=max_size,
                                    verbose=0) as sink:  # fmt: skip
            for i, (path, label) in enumerate(tree.samples):
                ext, data = _image_bytes(Path(path))
                sink.write({"__key__": f"{split}_{i:08d}", ext: data, "cls": label})
            counts[split] = {"samples": len(tree.samples), "shards": sink.shard}
    atomic_write_text(dst / "classes.txt", "".join(f"{c}\n" for c in classes))
    return {"output": str(dst), "classes": len(classes), **counts}


def _image_bytes(path: Path) -> tuple[str, bytes]:
    """A file's own bytes when readers take its format (jpg, jpeg, png, webp), else its pixels as PNG."""
    ext = path.suffix.lower().lstrip(".")
    if ext in IMAGE_EXTENSIONS:
        return ext, path.read_bytes()
    from PIL import Image

    buffer = io.BytesIO()
    try:
        with Image.open(path) as im:
            im.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot convert {path} to PNG for the shards ({type(exc).__name__})") from None
    return "png", buffer.getvalue()
