"""The shard index at scale, side by side with the index it replaced (a Python list of (key, offset, size, label)
tuples per sample, read through buffered files), on synthetic WebDataset shards of tiny samples:

- bytes per sample held by each process;
- the index build rate (the tar headers scanned, once per machine);
- the private memory a forked DataLoader worker holds after reading a share of an epoch in random order (what a
  worker copies of the parent's pages: Python objects have their reference counts written, numpy buffers not);
- bytes read from storage per image byte on a file system whose read buffer is 16 MiB (Lustre, GPFS, CephFS
  report such an `st_blksize`, and Python's buffered `open` reads a whole buffer on every random access),
  counted at the raw reads;
with the ImageNet-1k and ImageNet-21k extrapolations.

`python -m benchmarks.shard_index [--samples 200000] [--shards 40]` -> benchmarks/results/shard-index-cpu.json
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inception_v3.data.shards import ShardImages, index_shard, shard_files
from inception_v3.utils.io import atomic_write_text

from .run import _cpu_name

BUFFER = 16 << 20  # a parallel file system's st_blksize
COLUMNS = ("image", "label")
IMAGENET = {"ImageNet-1k": (1_281_167, 1024, 110_000), "ImageNet-21k": (14_197_122, 11_000, 110_000)}


def make_shards(root: Path, samples: int, shards: int) -> list[Path]:
    """`samples` tiny JPEG + cls samples in `shards` tar files written by webdataset's TarWriter."""
    import webdataset

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        paths.append(root / f"train-{s:06d}.tar")
        with webdataset.TarWriter(str(paths[-1])) as sink:
            for i in range(s * samples // shards, (s + 1) * samples // shards):
                sink.write({"__key__": f"n{i % 1000:08d}_{i}", "jpg": jpeg, "cls": i % 1000})
    return paths


def old_index(paths: list[Path]) -> list[tuple[int, str, int, int, int]]:
    """The index as it was: one (shard, key, offset, size, label) tuple of Python objects per sample."""
    rows = []
    for s, path in enumerate(paths):
        with tarfile.open(path, mode="r:") as tar:
            labels, images = {}, {}
            for member in tar:
                key, _, ext = member.name.partition(".")
                if ext == "cls":
                    labels[key] = int(tar.extractfile(member).read())  # type: ignore[union-attr]
                elif ext == "jpg":
                    images[key] = (member.offset_data, member.size)
            rows += [(s, key, *images[key], labels[key]) for key in images]
    return rows


def private_mib() -> float:
    """This process's private dirty memory: pages written since the fork (copied from the parent) or allocated."""
    with open("/proc/self/smaps_rollup") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Private_Dirty"].split()[0]) / 1024


class Counting(io.FileIO):
    """A raw file that counts the bytes the buffered layer above it reads."""

    read_bytes = 0

    def readinto(self, b: Any) -> int | None:
        n = super().readinto(b)
        Counting.read_bytes += n or 0
        return n


def _worker(kind: str, order: list[int], queue: Any) -> None:
    """A forked worker: look its share up in the index in random order (the private memory that costs), then
    read those images (the bytes read: 16 MiB buffers for the previous index's buffered files)."""
    before = private_mib()
    looked_up = [STATE["old"][i][2] if kind == "old" else int(STATE["new"].rows[i]["offset"]) for i in order]
    private = private_mib() - before
    del looked_up
    if kind == "old":
        files: dict[int, Any] = {}
        for i in order:
            s, _key, offset, size, _label = STATE["old"][i]
            f = files.get(s) or files.setdefault(s, io.BufferedReader(Counting(STATE["paths"][s]), BUFFER))
            f.seek(offset)
            f.read(size)
        read = Counting.read_bytes
    else:
        source: ShardImages = STATE["new"]
        read = sum(len(source.stored(i).data) for i in order)  # os.pread: the bytes asked for, no more
    image_bytes = sum(STATE["sizes"][i] for i in order)
    queue.put({"private_mib": private, "bytes_read": read, "image_bytes": image_bytes})


STATE: dict[str, Any] = {}  # what forked workers inherit


def worker_share(kind: str, share: float, workers: int = 2) -> dict[str, float]:
    """Fork `workers` processes that each read `share` of the samples in random order; the largest private
    memory and the bytes read per image byte."""
    n = len(STATE["sizes"])
    order = np.random.default_rng(0).permutation(n)[: int(n * share)].tolist()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, order[w::workers], queue)) for w in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    read = sum(r["bytes_read"] for r in results) / sum(r["image_bytes"] for r in results)
    return {"worker_private_mib": max(r["private_mib"] for r in results), "read_per_image_byte": read}


def measure(samples: int, shards: int, share: float = 0.25) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["INCEPTION_V3_CACHE"] = str(root / "cache")
        start = time.perf_counter()
        paths = make_shards(root / "shards", samples, shards)
        written = time.perf_counter() - start
        start = time.perf_counter()
        old = old_index(paths)
        old_seconds = time.perf_counter() - start
        tracemalloc.start()
        old_bytes = tracemalloc.get_traced_memory()[0]
        kept = old_index(paths)  # again, to count what the built list holds
        old_bytes = tracemalloc.get_traced_memory()[0] - old_bytes
        tracemalloc.stop()
        del kept
        start = time.perf_counter()
        pattern = f"{root}/shards/train-{{000000..{shards - 1:06d}}}.tar"
        new = ShardImages(f"wds:{pattern}", shard_files(pattern), COLUMNS)
        new_seconds = time.perf_counter() - start
        assert len(new) == len(old) == samples and index_shard(paths[0])[0]["size"][0] == old[0][3]
        STATE.update(old=old, new=new, paths=paths, sizes=new.rows["size"].tolist())
        new_bytes = new.rows.nbytes + new.keys.nbytes
        rows = {
            "previous (Python tuples, buffered reads)": {"bytes_per_sample": old_bytes / samples,
                                                          "build_samples_per_s": samples / old_seconds,
                                                          **worker_share("old", share)},
            "ours (numpy rows, memory-mapped, pread)": {"bytes_per_sample": new_bytes / samples,
                                                         "build_samples_per_s": samples / new_seconds,
                                                         **worker_share("new", share)},
        }  # fmt: skip
    extrapolated = {}
    for name, (n, count, image_bytes) in IMAGENET.items():
        extrapolated[name] = {"samples": n, "shards": count, "image_bytes": image_bytes, **{
            label: {"index_mib_per_process": row["bytes_per_sample"] * n / 2**20,
                    "build_minutes": n / row["build_samples_per_s"] / 60,
                    # a random read fills one whole buffer (shards are larger); pread reads the image alone
                    "read_per_image_byte": 1.0 if label.startswith("ours") else max(BUFFER, image_bytes) / image_bytes}
            for label, row in rows.items()}}  # fmt: skip
    return {"samples": samples, "shards": shards, "share_read_by_workers": share, "write_seconds": written,
            "rows": rows, "imagenet": extrapolated}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/shard-index-cpu.json")
    args = parser.parse_args()
    machine = {"platform": platform.platform(), "cpu_model": _cpu_name(), "cpus": os.cpu_count(),
               "torch": torch.__version__}  # fmt: skip
    result = {"benchmark": "shard-index", "device": "cpu", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": f"python -m benchmarks.shard_index --samples {args.samples} --shards {args.shards}",
              "machine": machine, "buffer_bytes": BUFFER, **measure(args.samples, args.shards)}  # fmt: skip
    for name, row in result["rows"].items():
        print(
            f"{name}: {row['bytes_per_sample']:.0f} B/sample, {row['build_samples_per_s']:,.0f} samples/s, "
            f"worker {row['worker_private_mib']:.1f} MiB private, {row['read_per_image_byte']:.1f} B read/image B"
        )
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
