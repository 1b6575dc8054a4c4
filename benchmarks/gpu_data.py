"""The GPU data path: JPEG decoding on the GPU (torchvision's nvjpeg-backed `decode_jpeg`) and the
Inception crop / resize / flip on the GPU, in images/s, against one CPU worker doing the same."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.io import decode_jpeg, read_file
from torchvision.transforms.v2 import functional as TF

from .data_pipeline import make_jpegs


def random_crop_box(h: int, w: int, gen: torch.Generator, area: tuple[float, float] = (0.05, 1.0),
                    aspect: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:  # fmt: skip
    """A distorted crop (top, left, height, width) like RandomResizedCrop's, falling back to the whole image."""
    for _ in range(10):
        target = h * w * (area[0] + (area[1] - area[0]) * float(torch.rand(1, generator=gen)))
        log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
        ratio = math.exp(log_lo + (log_hi - log_lo) * float(torch.rand(1, generator=gen)))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return top, left, ch, cw
    return 0, 0, h, w


def augment(images: list[Tensor], gen: torch.Generator, size: int = 299) -> Tensor:
    """Crop, resize, flip each decoded uint8 image where it lies, then stack and scale to [-1, 1]."""
    out = []
    for img in images:
        top, left, ch, cw = random_crop_box(img.shape[-2], img.shape[-1], gen)
        img = TF.resized_crop(img, top, left, ch, cw, [size, size], antialias=True)
        if float(torch.rand(1, generator=gen)) < 0.5:
            img = img.flip(-1)
        out.append(img)
    return torch.stack(out).float().div_(127.5).sub_(1.0)


def measure_gpu_data(count: int = 512, batch: int = 128, folder: Path | None = None) -> dict[str, Any]:
    """images/s of decode + augmentation on the GPU (batched) and on one CPU thread."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(folder or Path(tmp), count)
        data = [read_file(str(p)) for p in paths]
        gen = torch.Generator().manual_seed(0)
        result: dict[str, Any] = {"images": count, "batch": batch}
        for device in ("cuda", "cpu"):
            for _ in range(2):  # the first pass warms up nvjpeg / the allocator
                start = time.perf_counter()
                for i in range(0, count, batch):
                    chunk = data[i : i + batch]
                    decoded = decode_jpeg(chunk, device=device)
                    augment(decoded, gen)
                if device == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
            result[device] = {"images_per_s": count / elapsed}
            print(f"gpu data path  {device}: decode + crop/resize/flip {count / elapsed:.0f} images/s", flush=True)
    return result
