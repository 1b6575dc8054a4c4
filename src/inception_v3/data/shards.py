"""WebDataset tar shards read map-style, by index: the seeded sampler, `--classes`, `--train-subset`, exact
resume and each replica's share work exactly as with image folders.

A sample is the tar members that share a key (the member name up to the first dot of its base name, as
webdataset groups them): an image (`jpg`, `jpeg`, `png`, `webp`) and a label (`cls`, or `label` in a
`json`). Each shard's headers and labels are indexed once and the index cached, so shards written by
webdataset's own `ShardWriter` need no extra file. Class names come from `classes.txt` (one per line) or
`classes.json` beside the shards when there is one.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from ..errors import UserError, reason
from ..utils.io import atomic_write_text, cache_root
from ..utils.progress import progress_bar
from .image_io import JPEG_MAGIC, BadSample, decode_image_bytes

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
    """The shard files `pattern` (braces expanded) names under `data_dir`; all must exist. A URL (`https://`,
    `pipe:COMMAND`, any scheme of webdataset's openers) is fetched once into the cache (`fetch_shard`).
    `option`: the command-line option the pattern came from, for messages."""
    if not pattern:
        raise UserError(f"--dataset wds needs {option}, a shard pattern such as 'train-{{000000..000099}}.tar'")
    names = expand_braces(pattern)
    if is_url(data_dir or "") or is_url(pattern):
        urls = [n if is_url(n) else f"{(data_dir or '').rstrip('/')}/{n}" for n in names]
        paths = [fetch_shard(u, f"{i + 1} of {len(urls)}") for i, u in enumerate(urls)]
        head, _, tail = _around_name(urls[0])
        if not fetch_shard(f"{head}classes.txt{tail}", "", optional=True).is_file():
            print(f"note: no classes.txt beside {urls[0]}; the classes are named by their numbers", file=sys.stderr)
        return paths
    paths = [Path(data_dir or ".") / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        raise UserError(f"{option} {pattern!r} matches no shard in {data_dir or '.'}")
    if missing:
        raise UserError(f"shard {missing[0]} is missing ({len(missing)} of the {len(paths)} shards of {pattern!r})")
    return paths


def is_url(text: str) -> bool:
    """Whether `text` is read through webdataset's openers (`https://...`, `pipe:COMMAND`, `hf://...`)."""
    return "://" in text or text.startswith("pipe:")


def _around_name(url: str) -> tuple[str, str, str]:
    """(what comes before, the file name, what comes after) in a URL or `pipe:` command; the name is the last
    `NAME.tar` (or `classes.txt`), else the last part."""
    found = re.findall(r"[^/\s'\"]+\.(?:tar|txt)(?=[\s'\"]|$)", url)
    name = found[-1] if found else url.rstrip("/").rpartition("/")[2]
    head, _, tail = url.rpartition(name)
    return head, name, tail


def fetch_shard(url: str, which: str, optional: bool = False) -> Path:
    """A local copy of the shard at `url`, fetched once through webdataset's openers (curl for http(s), the
    command of `pipe:`) into $INCEPTION_V3_CACHE/wds-shards/<hash of the URL around the name>/; reading by
    index needs random access, so remote shards are read from that copy. Replicas and workers on one machine
    fetch each shard once (a lock per file). `optional` (classes.txt): a failure returns the missing path."""
    head, name, tail = _around_name(url)
    target = cache_root() / "wds-shards" / hashlib.sha256(f"{head}|{tail}".encode()).hexdigest()[:24] / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another replica may be fetching it: wait, then use its copy
        if not target.is_file():
            _fetch(url, target, which, optional)
    return target


def _fetch(url: str, target: Path, which: str, optional: bool) -> None:
    from webdataset.gopen import gopen

    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        with (
            gopen(url, "rb") as stream,
            open(tmp, "wb") as f,
            progress_bar(desc=f"fetching {target.name} ({which})", unit="B", unit_scale=True, disable=optional,
                         leave=False) as bar,
        ):  # fmt: skip
            while chunk := stream.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
        if tmp.stat().st_size == 0:
            raise OSError("nothing was received")
        os.replace(tmp, target)
    except Exception as exc:  # the openers raise several types (exit status of curl or the command, OSError)
        if optional:
            return
        status = re.search(r"exit (\d+)", str(exc))
        why = f"the command exited with status {status.group(1)}" if status else reason(exc)
        if status and status.group(1) == "22":
            why = "the server answered with an HTTP error (curl exit 22: not found?)"
        raise UserError(f"cannot fetch shard {url} ({which}): {why}; check the URL, or fetch the shards and pass "
                        f"their folder as --data-dir") from None  # fmt: skip
    finally:
        tmp.unlink(missing_ok=True)  # an interrupted or failed fetch leaves nothing behind


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

    def raw(self, i: int) -> bytes:
        """Sample i's image bytes, as stored."""
        s, _, offset, size = self.items[i]
        return self._read(s, offset, size)

    def __getitem__(self, i: int) -> Any:
        name = self.samples[i][0]
        try:
            image = decode_image_bytes(self.raw(i), name)
        except UserError as exc:
            return BadSample(name, str(exc))
        return self.transform(image), self.samples[i][1]


def write_shards(src: str, out: str, max_count: int = 10000, max_size: float = 3e9, overwrite: bool = False,
                 train_split: str = "train", val_split: str = "validation", image_column: str = "image",
                 label_column: str = "label") -> dict[str, Any]:  # fmt: skip
    """WebDataset shards with webdataset's `ShardWriter`, OUT/train-000000.tar ..., OUT/val-000000.tar ... and
    OUT/classes.txt, of an image folder (SRC/train, SRC/val, one sub-folder per class; samples in the folder
    order, class then file name) or of a Hugging Face dataset (`hf:NAME_OR_PATH`, or a `save_to_disk`
    folder; its `train_split` and `val_split`, rows in order). Each sample holds the image's own bytes
    (`jpg`, `png`, `webp`; other formats as PNG) and its class index (`cls`), so a run from the shards sees
    the images of a run from the source, in the same order."""
    try:
        import webdataset
    except ImportError:
        raise UserError("writing shards needs webdataset: pip install 'inception-v3[wds]'") from None
    dst = Path(out)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise UserError(f"{dst} is not empty; choose another folder or pass --overwrite")
    hf = src.startswith("hf:") or any((Path(src) / f).is_file() for f in ("dataset_dict.json", "state.json"))
    if hf:
        splits, classes = _hf_splits(src.removeprefix("hf:"), train_split, val_split, image_column, label_column)
    else:
        splits, classes = _folder_splits(src)
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, (count, samples) in splits.items():
        with webdataset.ShardWriter(str(dst / f"{split}-%06d.tar"), maxcount=max_count, maxsize=max_size,
                                    verbose=0) as sink:  # fmt: skip
            for i, (ext, data, label) in enumerate(samples):
                sink.write({"__key__": f"{split}_{i:08d}", ext: data, "cls": label})
            counts[split] = {"samples": count, "shards": sink.shard}
    atomic_write_text(dst / "classes.txt", "".join(f"{c}\n" for c in classes))
    return {"output": str(dst), "classes": len(classes), **counts}


Samples = tuple[int, Iterator[tuple[str, bytes, int]]]  # how many, then (extension, bytes, label) of each


def _folder_splits(src: str) -> tuple[dict[str, Samples], list[str]]:
    from torchvision.datasets import ImageFolder

    from .image_io import is_image_file

    folders = {split: Path(src) / split for split in ("train", "val")}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} does not exist: SRC must hold train/ and val/ (one sub-folder per class), "
                        f"or be a Hugging Face dataset (hf:NAME)")  # fmt: skip
    trees = {split: ImageFolder(str(f), is_valid_file=is_image_file, allow_empty=True) for split, f in folders.items()}
    if trees["val"].classes != trees["train"].classes:
        raise UserError(f"{src}: train/ and val/ have different class folders")

    def samples(files: list[tuple[str, int]]) -> Iterator[tuple[str, bytes, int]]:
        for path, label in files:
            yield *_as_stored(Path(path).read_bytes(), path), label

    return {split: (len(t.samples), samples(t.samples)) for split, t in trees.items()}, trees["train"].classes


def _hf_splits(spec: str, train_split: str, val_split: str, image_column: str, label_column: str
               ) -> tuple[dict[str, Samples], list[str]]:  # fmt: skip
    from .hf_datasets import HfImages, class_names, load_split

    parts = {split: HfImages(load_split(spec, name, image_column, label_column), f"{spec}:{name}", image_column,
                             label_column, lambda image: image)
             for split, name in (("train", train_split), ("val", val_split))}  # fmt: skip
    classes = class_names(parts["train"].ds, label_column, [y for _, y in parts["train"].samples])

    def samples(ds: HfImages) -> Iterator[tuple[str, bytes, int]]:
        for i, (name, label) in enumerate(ds.samples):
            yield *_as_stored(ds.raw(i), name), label

    return {split: (len(ds), samples(ds)) for split, ds in parts.items()}, classes


def _as_stored(data: bytes, name: str) -> tuple[str, bytes]:
    """Image bytes as a shard stores them: JPEG, PNG and WebP as they are, other formats as PNG."""
    if data[:3] == JPEG_MAGIC:
        return "jpg", data
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", data
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", data
    from PIL import Image

    buffer = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot convert {name} to PNG for the shards ({type(exc).__name__})") from None
    return "png", buffer.getvalue()
