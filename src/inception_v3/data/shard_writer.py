"""`inception-v3 shards`: WebDataset shards of any labeled data set's training and validation splits, written
with webdataset's own `ShardWriter`: OUT/train-000000.tar ..., OUT/val-000000.tar ... and OUT/classes.txt. Each
sample holds the image's own bytes (`jpg`, `png`, `webp`; other formats, and pixels held in memory, as PNG)
and its class index (`cls`), in the source's order, so a run from the shards sees the images of a run from the
source, in the same order."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import UserError
from ..utils.io import atomic_write_text
from .datasets import split_sources
from .image_io import JPEG_MAGIC, Encoded
from .sources import COLUMNS, ImageSource

MANIFEST = "shards.json"  # what write_shards wrote in a folder: the only files an overwrite removes
SHARD_NAME = re.compile(r"^(train|val)-\d{6}\.tar$")


def write_shards(
    data_dir: str,
    out: str,
    dataset: str | None = None,
    train_split: str | None = None,
    val_split: str | None = None,
    max_count: int = 10000,
    max_size: float = 3e9,
    overwrite: bool = False,
    columns: tuple[str, str] = COLUMNS,
) -> dict[str, Any]:
    """Shards of the training and validation splits of the data at `data_dir` (named as `train` names them:
    a folder with train/ and val/, `hf:NAME`, a `save_to_disk` folder, ...). With `overwrite`, the shards an
    earlier run wrote in `out` are replaced: exactly the files it lists in `out/shards.json`, no others."""
    try:
        import webdataset
    except ImportError:
        raise UserError("writing shards needs webdataset: pip install 'inception-v3[wds]'") from None
    dst = Path(out)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise UserError(f"{dst} is not empty; choose another folder or pass `overwrite=True`")
    train, val, classes = split_sources(dataset, data_dir, train_split, val_split, columns)
    remove_written(dst)
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst / MANIFEST, json.dumps({"in_progress": True, "written": []}))  # an interrupted run's too
    counts = {}
    for split, source in (("train", train), ("val", val)):
        with webdataset.ShardWriter(
            str(dst / f"{split}-%06d.tar"), maxcount=max_count, maxsize=max_size, verbose=0
        ) as sink:
            for i, (ext, data, label) in enumerate(samples(source)):
                sink.write({"__key__": f"{split}_{i:08d}", ext: data, "cls": label})
            counts[split] = {"samples": len(source), "shards": sink.shard}
    atomic_write_text(dst / "classes.txt", "".join(f"{c}\n" for c in classes))
    written = [p.name for p in sorted(dst.glob("*.tar")) if SHARD_NAME.match(p.name)]
    atomic_write_text(dst / MANIFEST, json.dumps({"written": [*written, "classes.txt"], **counts}, indent=1))
    return {"output": str(dst), "classes": len(classes), **counts}


def remove_written(dst: Path) -> None:
    """Before writing into `dst` again: remove the files an earlier `write_shards` wrote there (its manifest's),
    and nothing else; refuse a shard-named file it did not write (a later pattern would read it as ours)."""
    if not dst.is_dir():
        return
    try:
        manifest = json.loads((dst / MANIFEST).read_text()) if (dst / MANIFEST).is_file() else {"written": []}
        ours = {n for n in manifest["written"] if SHARD_NAME.match(n) or n == "classes.txt"}  # only such names
        if manifest.get("in_progress"):  # an interrupted run: it found no foreign shard before it began
            ours |= {p.name for p in dst.iterdir() if SHARD_NAME.match(p.name)}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"{dst / MANIFEST} is damaged; remove the shards in {dst} by hand or choose another folder"
        ) from None
    foreign = sorted(p.name for p in dst.iterdir() if SHARD_NAME.match(p.name) and p.name not in ours)
    if foreign:
        raise UserError(
            f"{dst} holds {foreign[0]}, which `shards` did not write there (not in its {MANIFEST}); "
            f"remove it or choose another folder"
        )
    for name in [*ours, MANIFEST]:
        (dst / name).unlink(missing_ok=True)


def samples(source: ImageSource) -> Iterator[tuple[str, bytes, int]]:
    """(extension, bytes, label) of each image, as a shard stores it."""
    labels = source.require_labels()
    for i in range(len(source)):
        item = source.stored(i)
        data, name = (item.data, item.name) if isinstance(item, Encoded) else (_png(item), source.item_name(i))
        yield *_as_stored(data, name), int(labels[i])


def _png(pixels: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _as_stored(data: bytes, name: str) -> tuple[str, bytes]:
    """Image bytes as a shard stores them: JPEG, PNG and WebP as they are, other formats as PNG."""
    if data[:3] == JPEG_MAGIC:
        return "jpg", data
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", data
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", data
    buffer = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot convert {name} to PNG for the shards ({type(exc).__name__})") from None
    return "png", buffer.getvalue()
