"""WebDataset tar shards as a source (`wds:DIR/PATTERN`, `wds:https://host/dir/PATTERN`, `wds:pipe:COMMAND`),
read by index: the seeded sampler, a subset of classes, exact resume and each replica's share work exactly
as with image folders.

A sample is the tar members that share a key (the member name up to the first dot of its base name, as
webdataset groups them): an image (`jpg`, `jpeg`, `png`, `webp`) and a label (`cls`, or `label` in a
`json`). Each shard's headers and labels are indexed once and the index cached, so shards written by
webdataset's own `ShardWriter` need no extra file. Class names come from `classes.txt` (one per line) or
`classes.json` beside the shards when there is one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..utils.download import around_name, fetch_remote, is_remote
from ..utils.io import atomic_write_text, cache_root
from .image_io import Encoded, Stored
from .sources import ImageSource

log = logging.getLogger(__name__)

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


def shard_files(spec: str) -> list[Path]:
    """The shard files `spec` (DIR/PATTERN, braces expanded) names; all must exist. A URL (`https://`,
    `pipe:COMMAND`, any scheme of webdataset's openers) is fetched once into the cache (`fetch_remote`)."""
    names = expand_braces(spec)
    if is_remote(spec):
        paths = [fetch_remote(u, f"{i + 1} of {len(names)}") for i, u in enumerate(names)]
        head, _, tail = around_name(names[0])
        if not fetch_remote(f"{head}classes.txt{tail}", "", optional=True).is_file():
            log.warning("note: no classes.txt beside %s; the classes are named by their numbers", names[0])
        return paths
    paths = [Path(n) for n in names]
    missing = [p for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        folder, pattern = os.path.split(spec)
        raise UserError(f"the shard pattern {pattern!r} matches no shard in {folder or '.'}")
    if missing:
        raise UserError(f"shard {missing[0]} is missing ({len(missing)} of the {len(paths)} shards of {spec!r})")
    return paths


def index_shard(path: Path) -> list[tuple[str, int, int, int]]:
    """(key, image offset, image size, label) of every sample in a shard, from its headers and small
    members; cached under $INCEPTION_V3_CACHE/wds-index by (path, size, modification time)."""
    st = path.stat()
    ident = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cached = cache_root() / "wds-index" / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"
    if cached.is_file():
        return [tuple(row) for row in json.loads(cached.read_text())]
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
        raise UserError(
            f"shard {path} is truncated or not a tar file ({type(exc).__name__}: {exc}); "
            f"write it again or leave it out of the pattern"
        ) from None
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


def class_names(folder: Path, labels: list[int]) -> list[str] | None:
    """Names from classes.txt / classes.json beside the shards, else None (the labels are numbers)."""
    if (folder / "classes.txt").is_file():
        names = [line.strip() for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    elif (folder / "classes.json").is_file():
        names = [str(n) for n in json.loads((folder / "classes.json").read_text())]
    else:
        return None
    if labels and max(labels) >= len(names):
        raise UserError(f"a sample in {folder} has label {max(labels)} but the class list names {len(names)}")
    return names


class ShardImages(ImageSource):
    """The samples of a list of shards, by index (shard order, then member order): each image's stored bytes,
    named by shard and key, read with `os.pread` (no buffer: one read of the image's own bytes)."""

    def __init__(self, spec: str, shards: list[Path]) -> None:
        self.name, self.shards = spec, shards
        items: list[tuple[int, str, int, int]] = []
        labels: list[int] = []
        for s, shard in enumerate(shards):
            for key, offset, size, label in index_shard(shard):
                items.append((s, key, offset, size))
                labels.append(label)
        self.items = items
        self.labels = np.array(labels, dtype=np.int64)
        self.classes = class_names(shards[0].parent, labels)
        stats = ",".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in shards)
        self.fingerprint = f"wds:{stats}"
        self._files: dict[int, int] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:  # open files stay with their process
        return {**self.__dict__, "_files": {}, "_pid": -1}

    def item_name(self, i: int) -> str:
        s, key, _, _ = self.items[i]
        return f"{self.shards[s]}:{key}"

    def stored(self, i: int) -> Stored:
        s, _, offset, size = self.items[i]
        if self._pid != os.getpid():  # a DataLoader worker opens its own files
            self._files, self._pid = {}, os.getpid()
        fd = self._files.pop(s, None)
        if fd is None:
            if len(self._files) >= OPEN_SHARDS:  # the least recently read one goes
                os.close(self._files.pop(next(iter(self._files))))
            fd = os.open(self.shards[s], os.O_RDONLY)
        self._files[s] = fd  # most recently read last
        return Encoded(os.pread(fd, size, offset), self.item_name(i))


def open_shards(spec: str, columns: tuple[str, str] = ("image", "label")) -> ShardImages:
    """`DIR/PATTERN` (or a URL pattern) as a labeled source."""
    if not spec:
        raise UserError("give the shards as wds:DIR/PATTERN, e.g. wds:/data/shards/train-{000000..000099}.tar")
    return ShardImages(f"wds:{spec}", shard_files(spec))
