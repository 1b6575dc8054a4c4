"""WebDataset tar shards as a source (`wds:DIR/PATTERN`, `wds:https://host/dir/PATTERN`, `wds:pipe:COMMAND`),
read by index, so that the seeded sampler, a subset of classes, exact resume and each replica's share work
exactly as with image folders.

Samples are grouped exactly as webdataset groups them: the members in tar order, a new sample whenever the key
(the member name up to the first dot of its base name) differs from the one before, `__x__` members skipped,
extensions lowercased; a key that comes again later is another sample. A sample has one image (any format
Pillow opens) and a label: `.cls`, or `label`/`cls` in a `.json` (a `.json` of other metadata is no label;
none: the sample is unlabeled). Two image members, or two labels that disagree, are refused naming the shard
and key unless `image_column` (an extension such as "png") or `label_column` ("cls" or "json") picks one.

The index is numpy arrays: `ROW`, 24 bytes a sample, and its key's bytes and end, 8 more. There is no Python
object per sample, so DataLoader workers forked from a process share its pages. Each split's index is a pair
of files in `$INCEPTION_V3_CACHE/wds-index`, memory-mapped by every process of a machine, built once per
machine (the first process builds it under a file lock while the others wait; `inception-v3 shards --index`
builds it ahead of time) from per-shard indexes keyed by each shard's identity (path, size, modification and
change times, inode, its first bytes) under a format version. Images are read with `os.pread`: one read of
the image's own bytes, whatever the file system's block size.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UserError
from ..utils.download import fetch_remote, is_remote, sibling_url
from ..utils.io import atomic_write, cache_root
from ..utils.progress import progress_bar
from .image_io import Encoded, Stored
from .sources import COLUMNS, ImageSource

log = logging.getLogger(__name__)

INDEX_VERSION = 2  # the indexing rules: an index written under other rules is never read
ROW = np.dtype([("offset", "<i8"), ("size", "<i8"), ("label", "<i4"), ("shard", "<i4")])
IMAGE_EXTENSIONS = frozenset(ext[1:] for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
OPEN_SHARDS = 32  # open shard files per process at most (1,024 shards x 8 workers x 8 replicas would exhaust ulimits)
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key, extensions
_META = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta
_HEAD = 4096  # the first bytes of a shard, hashed into its index's identity
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")  # gzip, bzip2, xz, zstd


def expand_braces(pattern: str) -> list[str]:
    """The names a shard pattern stands for, expanded by braceexpand as webdataset expands them."""
    try:
        from braceexpand import braceexpand
    except ImportError:
        raise UserError("shard patterns need webdataset's braceexpand: pip install 'inception-v3[wds]'") from None
    return list(braceexpand(pattern))


def shard_files(spec: str) -> list[Path]:
    """The shard files `spec` (DIR/PATTERN) names; all must exist. A URL (`https://`, `pipe:COMMAND`, any scheme
    of webdataset's openers) is fetched once into the cache and checked (`fetch_remote`): a copy that is not a
    whole tar (a command that stopped early) is fetched again."""
    names = expand_braces(spec)
    if is_remote(spec):
        paths = [fetch_remote(u, f"{i + 1} of {len(names)}", check_tar) for i, u in enumerate(names)]
        if not fetch_remote(sibling_url(names[0], "classes.txt"), "", optional=True).is_file():
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


def refuse_compressed(path: Path) -> None:
    with open(path, "rb") as f:
        if f.read(6).startswith(_COMPRESSED):
            raise UserError(
                f"shard {path} is compressed; compressed shards are not supported (reading by index needs "
                f"the plain tar): write them uncompressed"
            )


def check_tar(path: Path) -> None:
    """Raise UserError unless `path` is a whole, uncompressed tar file."""
    refuse_compressed(path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            tar.getmembers()  # reads every header, to the end
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(
            f"shard {path} is truncated or not a tar file ({type(exc).__name__}: {exc}); write it "
            f"again or leave it out of the pattern"
        ) from None


def _groups(tar: tarfile.TarFile, path: Path) -> Iterator[tuple[str, dict[str, tarfile.TarInfo]]]:
    """webdataset's samples: the files it reads, in tar order, consecutive ones with one key grouped by their
    (lowercased) extensions (a key that comes back later is a new sample)."""
    read = ((match, m) for m in tar if m.isreg() and not _META.match(m.name) and (match := _KEY.match(m.name)))
    for key, members in itertools.groupby(read, key=lambda named: named[0].group(1)):
        sample: dict[str, tarfile.TarInfo] = {}
        for key_ext, member in members:
            ext = key_ext.group(2).lower()
            if ext in sample:
                raise UserError(
                    f"sample {key} in shard {path} has two {ext} members (webdataset refuses it too); write the "
                    f"shard again"
                )
            sample[ext] = member
        yield key, sample


def index_shard(path: Path, columns: tuple[str, str] = COLUMNS) -> tuple[np.ndarray, list[str]]:
    """The rows (`ROW`, shard 0) and keys of every sample of one shard: where its image's bytes are and its label
    (-1: none). `columns`: the image extension and label member to use when a sample has several."""
    refuse_compressed(path)
    rows, keys = [], []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for key, sample in _groups(tar, path):
                image = _image(sample, columns[0], path, key)
                rows.append((image.offset_data, image.size, _sample_label(tar, sample, columns[1], path, key), 0))
                keys.append(key)
    except (tarfile.TarError, EOFError, OSError):
        check_tar(path)  # says what is wrong with the file: truncated, not a tar
        raise
    return np.array(rows, dtype=ROW), keys


def _image(sample: dict[str, tarfile.TarInfo], column: str, path: Path, key: str) -> tarfile.TarInfo:
    images = sorted(ext for ext in sample if ext in IMAGE_EXTENSIONS)
    if column in sample:
        return sample[column]
    if len(images) == 1:
        return sample[images[0]]
    if not images:
        raise UserError(f"sample {key} in shard {path} has no image (its members: {', '.join(sample)})")
    raise UserError(
        f"sample {key} in shard {path} has {len(images)} images ({', '.join(images)}); name the one to "
        f"read with `image_column`, e.g. {images[0]!r}"
    )


def _sample_label(tar: tarfile.TarFile, sample: dict[str, tarfile.TarInfo], column: str, path: Path, key: str) -> int:
    """The label of a sample: its .cls, or `label`/`cls` in its .json; -1 when it has none."""
    found = {}
    for ext in ("cls", "json"):
        if ext in sample and column in ("label", ext):
            value = _label(tar.extractfile(sample[ext]).read(), ext, path, key)  # type: ignore[union-attr]
            if value is not None:
                found[ext] = value
    if len(set(found.values())) > 1:
        raise UserError(
            f"sample {key} in shard {path} has two labels ({found}); name the one to use with "
            f"`label_column`: 'cls' or 'json'"
        )
    return next(iter(found.values()), -1)


def _label(data: bytes, ext: str, path: Path, key: str) -> int | None:
    try:
        if ext == "cls":
            return int(data.decode().strip())
        meta = json.loads(data)
        value = meta.get("label", meta.get("cls")) if isinstance(meta, dict) else None
        return None if value is None else int(value)  # a .json of other metadata carries no label
    except (ValueError, TypeError, UnicodeDecodeError):
        raise UserError(f"sample {key} in shard {path} has no readable label in its .{ext}") from None


def class_names(folder: Path) -> list[str] | None:
    """Names from classes.txt (one per line), or classes.json beside the shards: a list, or a dict from index
    to a name or to [id, name] (imagenet_class_index.json's shape); None: the labels are numbers."""
    if (folder / "classes.txt").is_file():
        return [line.strip() for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    if not (folder / "classes.json").is_file():
        return None
    try:
        data = json.loads((folder / "classes.json").read_text())
        if isinstance(data, dict):
            values = [data[str(i)] for i in range(len(data))]
            return [str(v[-1] if isinstance(v, list) else v) for v in values]
        return [str(n) for n in data]
    except (ValueError, KeyError, IndexError):
        raise UserError(
            f"{folder / 'classes.json'} is neither a list of names nor a dict from 0, 1, ... to names"
        ) from None


def _shard_key(path: Path, columns: tuple[str, str]) -> str:
    """A shard's identity: what a rewrite changes even at the same size and modification time (inode, change
    time, the first bytes), and the indexing rules."""
    st = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(_HEAD)).hexdigest()
    ident = [INDEX_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, head, *columns]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def split_index(shards: list[Path], columns: tuple[str, str], name: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of every sample of `shards` (shard ids in order) and their keys (utf-8, sample i's ending at
    ends[i]: `keys_and_ends`), from the machine's cache, memory-mapped: built by the first process that asks (the
    others wait for it on a lock). An unwritable cache: built in memory, with a note."""
    keys = [_shard_key(p, columns) for p in shards]
    folder = cache_root() / "wds-index"
    stem = f"split-{hashlib.sha256(''.join(keys).encode()).hexdigest()[:32]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f".{stem}.lock", "w")  # noqa: SIM115
    except OSError as exc:
        log.warning("note: the index cache %s is not writable (%s); indexing %s in memory", folder, exc, name)
        return _build(shards, keys, columns, name, None)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine; the others read what it wrote
        paths = [folder / f"{stem}-{part}.npy" for part in ("rows", "keys")]
        if not all(p.is_file() for p in paths):
            for path, array in zip(paths, _build(shards, keys, columns, name, folder), strict=True):
                _save(path, {"": array})
    return np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")


def _build(
    shards: list[Path], keys: list[str], columns: tuple[str, str], name: str, folder: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and a key blob (the keys' utf-8 bytes, then each key's end as 8 little-endian bytes)."""
    rows, names = [], []
    with progress_bar(total=len(shards), desc=f"indexing {name}", unit="shard", leave=False, delay=2) as bar:
        for s, (path, key) in enumerate(zip(shards, keys, strict=True)):
            cached = folder / f"{key}.npz" if folder is not None else None
            if cached is not None and cached.is_file():
                with np.load(cached) as part:
                    shard_rows, shard_keys = part["rows"], part["keys"].tolist()
            else:
                shard_rows, shard_keys = index_shard(path, columns)
                if cached is not None:
                    with contextlib.suppress(OSError):
                        _save(cached, {"rows": shard_rows, "keys": np.array(shard_keys, dtype=str)})
            shard_rows = shard_rows.copy()
            shard_rows["shard"] = s
            rows.append(shard_rows)
            names += shard_keys
            bar.update(1)
    encoded = [k.encode() for k in names]
    ends = np.cumsum([len(k) for k in encoded], dtype=np.int64)
    blob = np.frombuffer(b"".join(encoded) + ends.tobytes(), dtype=np.uint8)
    return (np.concatenate(rows) if rows else np.zeros(0, dtype=ROW)), blob


def _save(path: Path, arrays: dict[str, Any]) -> None:
    """One array as .npy (`{"": array}`), or several as .npz, written atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arrays[""]) if "" in arrays else np.savez(f, **arrays)

    atomic_write(path, write)


class ShardImages(ImageSource):
    """The samples of a list of shards, by index (shard order, then webdataset's sample order): each image's
    stored bytes, named by shard and key."""

    def __init__(self, spec: str, shards: list[Path], columns: tuple[str, str]) -> None:
        self.name, self.shards = spec, shards
        self.rows, self.keys = split_index(shards, columns, spec)
        self.key_ends = self.keys[len(self.keys) - 8 * len(self.rows) :].view(np.int64)
        self.labels = self.rows["label"]  # a view: no copy of the index
        self.classes = class_names(shards[0].parent)
        if self.classes is not None and len(self.labels) and self.labels.max() >= len(self.classes):
            raise UserError(
                f"a sample of {spec} has label {self.labels.max()} but the class list beside the shards "
                f"names {len(self.classes)} classes"
            )
        self.fingerprint = "wds:" + ",".join(_shard_key(p, columns) for p in shards)
        self._files: dict[int, int] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:  # open files stay with their process
        return {**self.__dict__, "_files": {}, "_pid": -1}

    def __del__(self) -> None:
        if getattr(self, "_pid", -1) == os.getpid():
            for fd in self._files.values():
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _fd(self, s: int) -> int:
        if self._pid != os.getpid():  # a DataLoader worker opens its own files
            self._files, self._pid = {}, os.getpid()
        fd = self._files.pop(s, None)
        if fd is None:
            if len(self._files) >= OPEN_SHARDS:  # the least recently read one goes
                os.close(self._files.pop(next(iter(self._files))))
            fd = os.open(self.shards[s], os.O_RDONLY)
        self._files[s] = fd  # most recently read last
        return fd

    def item_name(self, i: int) -> str:
        """shard:key, webdataset's `__key__`."""
        start = int(self.key_ends[i - 1]) if i else 0
        key = bytes(self.keys[start : int(self.key_ends[i])]).decode()
        return f"{self.shards[int(self.rows[i]['shard'])]}:{key}"

    def stored(self, i: int) -> Stored:
        row = self.rows[i]
        return Encoded(os.pread(self._fd(int(row["shard"])), int(row["size"]), int(row["offset"])), self.item_name(i))


def open_shards(spec: str, columns: tuple[str, str] = COLUMNS) -> ShardImages:
    """`DIR/PATTERN` (or a URL pattern) as a source."""
    if not spec:
        raise UserError("give the shards as wds:DIR/PATTERN, e.g. wds:/data/shards/train-{000000..000099}.tar")
    return ShardImages(f"wds:{spec}", shard_files(spec), columns)


def index_shards(spec: str, columns: tuple[str, str] = COLUMNS) -> dict[str, Any]:
    """Build the index of the shards `spec` (`wds:DIR/PATTERN`, or DIR/PATTERN) names in this machine's cache, ahead
    of the runs that read them (with $INCEPTION_V3_CACHE on shared storage: for every machine)."""
    source = open_shards(spec.removeprefix("wds:"), columns)
    size = source.rows.nbytes + source.keys.nbytes
    return {
        "shards": len(source.shards),
        "samples": len(source),
        "labeled": int((source.rows["label"] >= 0).sum()),
        "index_bytes": size,
        "bytes_per_sample": size / max(len(source), 1),
    }
