"""The training input pipeline per worker, for each format (image folder, WebDataset shards, Hugging Face
dataset) and JPEG decoder (Pillow, libjpeg-turbo through `torchvision.io.decode_jpeg`), against torchvision's
`ImageFolder` + `RandomResizedCrop`, on ImageNet-like JPEGs made here (500x375, quality 90).

One process, one thread, as a DataLoader worker runs; the pipelines interleaved over rounds, median kept.
Per pipeline: images/s and CPU-seconds per image (process time, so a pipeline that waits on storage shows it).

`python -m benchmarks.input_pipeline [--images 256] [--rounds 3]` -> benchmarks/results/input-pipeline-cpu.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import datasets

from inception_v3.data.formats import open_source
from inception_v3.data.image_io import Encoded, decode_image_bytes, image_tensor
from inception_v3.data.shard_writer import write_shards
from inception_v3.data.sources import ImageSource, SourceDataset
from inception_v3.data.transforms import Preprocessing, train_transform
from inception_v3.utils.io import atomic_write_text

from .data_pipeline import torchvision_standard
from .run import _cpu_name

CLASSES = 4


def make_data(root: Path, count: int) -> dict[str, Any]:
    """`count` 500x375 quality-90 JPEGs (smooth colour fields with texture, compressing like photos) as an
    image folder, as shards written by `write_shards`, and as an HF dataset (save_to_disk) of the same bytes."""
    import datasets as hf

    rng = np.random.default_rng(0)
    rows: list[tuple[str, int]] = []
    for split, n in (("train", count), ("val", CLASSES)):
        for i in range(n):
            label = i % CLASSES
            small = rng.integers(0, 256, (375 // 25, 500 // 25, 3)).astype(np.uint8)
            field = np.asarray(Image.fromarray(small).resize((500, 375), Image.BICUBIC), dtype=np.int16)
            pixels = np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
            path = root / "folder" / split / f"c{label}" / f"{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=90)
            if split == "train":
                rows.append((str(path), label))
    write_shards(str(root / "folder"), str(root / "shards"), max_count=1000)
    features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=[f"c{k}" for k in range(CLASSES)])})
    rows.sort(key=lambda r: (r[1], r[0]))
    table = hf.Dataset.from_dict({"image": [p for p, _ in rows], "label": [y for _, y in rows]}, features=features)
    table = table.cast_column("image", hf.Image(decode=False))
    table = table.map(lambda r: {"image": {"bytes": Path(r["image"]["path"]).read_bytes(), "path": None}})
    table.cast_column("image", hf.Image()).save_to_disk(str(root / "hf"))
    return {"folder": root / "folder" / "train", "shards": root / "shards", "hf": root / "hf"}


def pillow_decode(data: bytes, name: str) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return image_tensor(im)


def pipelines(data: dict[str, Any], size: int = 299) -> dict[str, Callable[[int], Any]]:
    """name -> sample i from stored bytes to a normalized training tensor."""
    crop = train_transform(Preprocessing(size=size, color_distortion=0.0), 3)  # crop, resize, flip, normalize
    full = train_transform(Preprocessing(size=size), 3)  # + the paper's colour distortion
    sources = {"image folder": open_source(str(data["folder"])),
               "WebDataset shards": open_source(f"wds:{data['shards']}/train-000000.tar"),
               "HF dataset": open_source(f"hf:{data['hf']}:train")}  # fmt: skip
    folder, shards, hf = (SourceDataset(s, crop) for s in sources.values())
    raws = {name: partial(_raw, source) for name, source in sources.items()}
    baseline = datasets.ImageFolder(str(data["folder"]), transform=torchvision_standard(size))
    out: dict[str, Callable[[int], Any]] = {
        "torchvision ImageFolder + RandomResizedCrop, flip (Pillow)": lambda i: baseline[i],
    }
    for fmt, raw in raws.items():
        for decoder, decode in (("Pillow", pillow_decode), ("libjpeg-turbo", decode_image_bytes)):
            out[f"{fmt}, {decoder}: crop, flip"] = lambda i, raw=raw, decode=decode: crop(decode(raw(i), str(i)))
    out["image folder, libjpeg-turbo: crop, flip + colour distortion (the paper's)"] = lambda i: full(
        decode_image_bytes(raws["image folder"](i), str(i))
    )
    out["image folder, dataset[i] as training reads it (libjpeg-turbo: crop, flip)"] = lambda i: folder[i]
    out["WebDataset shards, dataset[i] as training reads it"] = lambda i: shards[i]
    out["HF dataset, dataset[i] as training reads it"] = lambda i: hf[i]
    return out


def _raw(source: ImageSource, i: int) -> bytes:
    item = source.stored(i)
    assert isinstance(item, Encoded)
    return item.data


def measure(funcs: dict[str, Callable[[int], Any]], count: int, rounds: int) -> dict[str, Any]:
    """Per pipeline: median images/s and CPU-seconds per image over interleaved rounds, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs single-threaded
    rates: dict[str, list[float]] = {name: [] for name in funcs}
    cpu: dict[str, list[float]] = {name: [] for name in funcs}
    try:
        for _ in range(rounds):
            for name, fn in funcs.items():
                torch.manual_seed(0)
                wall, proc = time.perf_counter(), time.process_time()
                for i in range(count):
                    fn(i)
                rates[name].append(count / (time.perf_counter() - wall))
                cpu[name].append((time.process_time() - proc) / count)
    finally:
        torch.set_num_threads(threads)
    return {name: {"images_per_s": statistics.median(rates[name]), "cpu_s_per_image": statistics.median(cpu[name]),
                   "rounds_images_per_s": rates[name]} for name in funcs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/input-pipeline-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.images)
        rows = measure(pipelines(data), args.images, args.rounds)
    base = rows["torchvision ImageFolder + RandomResizedCrop, flip (Pillow)"]["images_per_s"]
    for name, r in rows.items():
        r["vs_torchvision"] = r["images_per_s"] / base
        print(f"{r['images_per_s']:7.1f} images/s  {r['cpu_s_per_image'] * 1e3:6.2f} ms CPU/image  "
              f"{r['vs_torchvision']:.2f}x  {name}")  # fmt: skip
    result = {"benchmark": "input-pipeline", "device": "cpu",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": f"python -m benchmarks.input_pipeline --images {args.images} --rounds {args.rounds}",
              "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                          "cpu_model": _cpu_name(), "torch": torch.__version__},
              "images": args.images, "image": "500x375 JPEG, quality 90", "output": "3 x 299 x 299 float32",
              "threads": 1, "pipelines": rows}  # fmt: skip
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
