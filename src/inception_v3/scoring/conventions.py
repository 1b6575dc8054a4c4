"""The scoring tools' conventions: how each turns a decoded image into the FID network's input, and the
dtypes and random streams each one's metrics use. Given the same network and images, a convention's
numbers equal its tool's.

- pytorch-fid: RGB scaled to [0, 1], `F.interpolate` bilinear (align_corners=False) to 299, then 2x - 1.
- torch-fidelity: uint8 RGB, TensorFlow 1's bilinear resize in float32 (source pixel = output pixel x
  in/out, no half-pixel offset), then (x - 128) / 128.
- clean-fid ("clean" mode): each channel as a float32 PIL image, PIL bicubic (antialiased) to 299,
  clipped to [0, 255], no quantization, then (x - 128) / 128.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import UserError

SIZE = 299


def prepare_pytorch_fid(images: Tensor) -> Tensor:
    """pytorch-fid: [0, 1] floats, `F.interpolate` bilinear (align_corners=False) to 299, then 2x - 1."""
    x = F.interpolate(images.float() / 255.0, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


def prepare_torch_fidelity(images: Tensor) -> Tensor:
    """torch-fidelity: TensorFlow 1's bilinear resize of the uint8 values in float32, then (x - 128) / 128."""
    return (tf1_bilinear(images.to(torch.float32), SIZE) - 128) / 128


def prepare_clean_fid(images: Tensor) -> Tensor:
    """clean-fid: PIL's bicubic per float channel (on the CPU), clipped, not quantized, then (x - 128) / 128."""
    resized = [torch.from_numpy(clean_resize(im.permute(1, 2, 0).cpu().numpy())) for im in images]
    x = torch.stack(resized).permute(0, 3, 1, 2).to(images.device) if resized else images.float()
    return (x - 128) / 128


@dataclass(frozen=True)
class Convention:
    """A tool's preprocessing and the numerical choices of its metrics."""

    name: str
    prepare_batch: Callable[[Tensor], Tensor]  # uint8 N x 3 x H x W RGB -> the network's N x 3 x 299 x 299 float32
    resizes_on_device: bool  # whether `prepare` is tensor arithmetic that runs where the image is (a GPU too)
    fid_trace: str  # "sqrtm": scipy's matrix square root; "eig": the sum of the product's eigenvalues' roots
    mean_dtype: str  # the dtype of the feature mean (the tools differ: float64 or float32)
    kid_style: str  # whose KID arithmetic: "torch-fidelity" or "clean-fid" (pytorch-fid has no KID)
    description: str = ""

    def prepare(self, image: Tensor) -> Tensor:
        """One H x W x 3 uint8 RGB image (as decoded) -> the network's 3 x 299 x 299 float32 input."""
        return self.prepare_batch(image.permute(2, 0, 1)[None])[0]


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "torch-fidelity",
            prepare_torch_fidelity,
            True,
            "eig",
            "float32",
            "torch-fidelity",
            "TensorFlow 1's bilinear on uint8, (x - 128) / 128; torch-fidelity's numbers",
        ),
        Convention(
            "clean-fid",
            prepare_clean_fid,
            False,
            "sqrtm",
            "float32",
            "clean-fid",
            "PIL bicubic per float channel, (x - 128) / 128; clean-fid's 'clean' mode",
        ),
        Convention(
            "pytorch-fid",
            prepare_pytorch_fid,
            True,
            "sqrtm",
            "float64",
            "torch-fidelity",
            "F.interpolate bilinear on [0, 1], 2x - 1; pytorch-fid's numbers",
        ),
    )
}


def get_convention(name: str) -> Convention:
    if name not in CONVENTIONS:
        raise UserError(f"unknown `convention` {name!r}; valid values: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """TensorFlow 1's `resize_bilinear` (align_corners=False) of N x C x H x W float32 images to size x size:
    source coordinate = output coordinate x (in / out), neighbours floor and floor + 1 (clamped), linear
    weights, along x first, then along y."""
    h, w = x.shape[-2:]

    def axis(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        src = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.float()

    ylo, yhi, dy = axis(h)
    xlo, xhi, dx = axis(w)
    rows = x[:, :, :, xlo] + (x[:, :, :, xhi] - x[:, :, :, xlo]) * dx.view(1, 1, 1, size)  # along x, every row
    top, bottom = rows[:, :, ylo, :], rows[:, :, yhi, :]
    return top + (bottom - top) * dy.view(1, 1, size, 1)


def clean_resize(image: np.ndarray) -> np.ndarray:
    """clean-fid's resize: each channel as a float32 ("F") PIL image, bicubic to 299 x 299, clipped to
    [0, 255]; H x W x 3 float32 out."""
    channels = []
    for c in range(image.shape[2]):
        plane = Image.fromarray(image[:, :, c].astype(np.float32))  # mode "F"
        channels.append(np.asarray(plane.resize((SIZE, SIZE), resample=Image.Resampling.BICUBIC)).clip(0, 255))
    return np.stack(channels, axis=2).astype(np.float32)
