"""`inception-v3 features`: pooled 2048-d features of images (and the FID tools' 64/192/768 taps), with
the preprocessing of the weights, batched, written atomically as .npz or .safetensors with the file names."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..data.image_io import expand_inputs, read_image
from ..errors import UserError
from ..models.inception import Inception3
from ..utils.devices import resolve_device
from ..utils.io import atomic_write
from .protocols import describe, load_members, single_crop_inputs

# The FID tools' feature taps (named by their width in the full model): the layer each one average-pools.
TAPS = {64: "maxpool1", 192: "maxpool2", 768: "Mixed_6e", 2048: "Mixed_7c"}
FORMATS = (".npz", ".safetensors")


def check_taps(taps: Sequence[int]) -> None:
    """Raise UserError for a tap the FID tools do not define."""
    unknown = [t for t in taps if t not in TAPS]
    if unknown:
        raise UserError(f"invalid feature tap {unknown[0]}; valid values: {', '.join(map(str, TAPS))}")


def pooled_taps(model: Inception3, x: Tensor, taps: Sequence[int]) -> dict[int, Tensor]:
    """Spatially averaged outputs of the tapped layers: tap -> N x channels."""
    check_taps(taps)
    outputs = model.forward_intermediates(x, [TAPS[t] for t in taps])
    return {t: torch.flatten(F.adaptive_avg_pool2d(outputs[TAPS[t]], 1), 1) for t in taps}


@torch.no_grad()
def extract_features(weights: str, inputs: list[str], output: str | os.PathLike[str], taps: Sequence[int] = (),
                     batch_size: int = 32, central_fraction: float | None = None, overwrite: bool = False,
                     show_progress: bool = True, device: str = "auto") -> dict[str, Any]:  # fmt: skip
    """Write `features` (N x 2048) and `taps_<k>` (N x k) for every image, and the file names; the network
    runs on `device` (cpu, cuda or auto)."""
    out = Path(output)
    if out.suffix not in FORMATS:
        raise UserError(f"--output must end in {' or '.join(FORMATS)}, got {out.name!r}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; choose another path or pass --overwrite")
    if batch_size < 1:
        raise UserError(f"invalid --batch-size {batch_size}: must be >= 1")
    check_taps(taps)
    paths = expand_inputs(inputs)
    where = resolve_device(device)
    members, _ = load_members([weights], central_fraction, where)
    member = members[0]
    wanted = [2048, *(t for t in taps if t != 2048)]
    arrays: dict[int, list[Tensor]] = {t: [] for t in wanted}
    with tqdm(total=len(paths), desc="features", unit="img", disable=not show_progress) as bar:
        for i in range(0, len(paths), batch_size):
            chunk = paths[i : i + batch_size]
            x = single_crop_inputs(member.model, [read_image(p) for p in chunk], member.view).to(where)
            for t, v in pooled_taps(member.model, x, wanted).items():  # type: ignore[arg-type]
                arrays[t].append(v.float().cpu())
            bar.update(len(chunk))
    tensors = {("features" if t == 2048 else f"taps_{t}"): torch.cat(v).contiguous() for t, v in arrays.items()}
    files = [str(p) for p in paths]
    if out.suffix == ".npz":

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, files=np.array(files), **{k: v.numpy() for k, v in tensors.items()})
    else:
        from safetensors.torch import save_file

        meta = {"files": json.dumps(files), "weights": str(weights), "preprocessing": json.dumps(member.view.__dict__)}

        def write(tmp: str) -> None:
            save_file(tensors, tmp, metadata=meta)

    atomic_write(out, write)
    return {"output": str(out), "images": len(files), "arrays": {k: list(v.shape) for k, v in tensors.items()},
            "weights": describe(member)}  # fmt: skip
