"""Data pipeline throughput per worker: JPEG decoding + the Inception train / eval preprocessing,
against torchvision's standard PIL RandomResizedCrop pipeline, on a folder of JPEGs made here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import transforms

from inception_v3.data.image_io import read_image
from inception_v3.data.transforms import Preprocessing, eval_transform, train_transform


def make_jpegs(folder: Path, count: int, size: tuple[int, int] = (500, 375)) -> list[Path]:
    """`count` ImageNet-sized JPEGs (smooth gradients with noise, so they compress like photos)."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    w, h = size
    ramp = torch.linspace(0, 1, w)[None, :] * torch.linspace(0, 1, h)[:, None]
    paths = []
    for i in range(count):
        color = torch.rand(3, 1, 1, generator=gen)
        noise = torch.rand(3, h, w, generator=gen) * 0.15
        pixels = ((ramp[None] * color + noise).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def torchvision_standard(size: int) -> Callable[[Image.Image], Any]:
    """torchvision's usual ImageNet training transform (on a Pillow image), the baseline of both benchmarks."""
    return transforms.Compose([
        transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])  # fmt: skip


def pipelines(size: int = 299) -> dict[str, Callable[[Path], Any]]:
    """name -> one image from file to a normalized tensor."""
    prep = Preprocessing(size=size)
    ours_train, ours_eval = train_transform(prep, 3), eval_transform(prep, 3)
    no_color = train_transform(Preprocessing(size=size, color_distortion=0.0), 3)
    standard = torchvision_standard(size)
    return {
        "ours train (decode + Inception distortions)": lambda p: ours_train(read_image(p)),
        "ours train without color distortion (decode, crop, flip)": lambda p: no_color(read_image(p)),
        "ours eval (decode + central crop 0.875)": lambda p: ours_eval(read_image(p)),
        "torchvision standard (PIL + RandomResizedCrop, flip)": lambda p: standard(Image.open(p).convert("RGB")),
    }


def measure_pipelines(paths: list[Path], rounds: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    """images/s of one worker (one thread) per pipeline, median over interleaved rounds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs single-threaded
    try:
        funcs = pipelines()
        rates: dict[str, list[float]] = {name: [] for name in funcs}
        for _ in range(rounds):
            for name, fn in funcs.items():
                start = time.perf_counter()
                for p in paths:
                    fn(p)
                rates[name].append(len(paths) / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
    out = {name: {"images_per_s_per_worker": sorted(r)[len(r) // 2], "rounds": r} for name, r in rates.items()}
    for name, entry in out.items():
        log(f"data  {name}: {entry['images_per_s_per_worker']:.0f} images/s per worker")
    return out
