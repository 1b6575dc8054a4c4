"""`inception-v3 features`: pooled 2048-d features of images (and the FID tools' 64/192/768 taps), with
the preprocessing of the weights, batched, written atomically as .npz or .safetensors with the file names."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.datasets import indexed_images, stored_image
from ..data.image_io import Encoded, decode_batch, expand_inputs
from ..errors import UserError
from ..models.inception import Inception3
from ..utils.devices import resolve_device
from ..utils.io import atomic_write
from ..utils.progress import progress_bar
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


def image_set(inputs: list[str], dataset: str = "files", split: str | None = None,
              columns: tuple[str, str] = ("image", "label"),
              ) -> tuple[list[str], Callable[[int], Encoded], list[int] | None, list[str] | None]:  # fmt: skip
    """(names, reader of image i's bytes, labels, class names) of image files, folders and globs (`files`),
    or of WebDataset shards / a Hugging Face split (`wds`/`hf`: `inputs` is the one folder or dataset and
    `split` the shard pattern or split name); files have no labels."""
    if dataset == "files":
        paths = expand_inputs(inputs)
        return [str(p) for p in paths], lambda i: Encoded.read(paths[i]), None, None
    if len(inputs) != 1:
        raise UserError(f"--dataset {dataset} reads one dataset (its folder or name), got {len(inputs)} inputs")
    ds, classes = indexed_images(dataset, inputs[0], split, "--split", columns)
    return [name for name, _ in ds.samples], partial(stored_image, ds), [y for _, y in ds.samples], classes


@torch.no_grad()
def extract_features(weights: str, inputs: list[str], output: str | os.PathLike[str], taps: Sequence[int] = (),
                     batch_size: int = 32, central_fraction: float | None = None, overwrite: bool = False,
                     show_progress: bool = True, device: str = "auto", dataset: str = "files",
                     split: str | None = None, columns: tuple[str, str] = ("image", "label")
                     ) -> dict[str, Any]:  # fmt: skip
    """Write `features` (N x 2048) and `taps_<k>` (N x k) for every image, with the file names (and, for
    shards and HF datasets, `labels` and the class names); the network runs on `device` (cpu, cuda or auto),
    where JPEGs are decoded too on a GPU."""
    out = Path(output)
    if out.suffix not in FORMATS:
        raise UserError(f"--output must end in {' or '.join(FORMATS)}, got {out.name!r}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; choose another path or pass --overwrite")
    if batch_size < 1:
        raise UserError(f"invalid --batch-size {batch_size}: must be >= 1")
    check_taps(taps)
    files, read, labels, classes = image_set(inputs, dataset, split, columns)
    where = resolve_device(device)
    members, _ = load_members([weights], central_fraction, where)
    member = members[0]
    wanted = [2048, *(t for t in taps if t != 2048)]
    arrays: dict[int, list[Tensor]] = {t: [] for t in wanted}
    with progress_bar(total=len(files), desc="features", unit="img", disable=not show_progress) as bar:
        for i in range(0, len(files), batch_size):
            chunk = range(i, min(i + batch_size, len(files)))
            x = single_crop_inputs(member.model, decode_batch([read(k) for k in chunk], where), member.view)
            for t, v in pooled_taps(member.model, x, wanted).items():  # type: ignore[arg-type]
                arrays[t].append(v.float().cpu())
            bar.update(len(chunk))
    tensors = {("features" if t == 2048 else f"taps_{t}"): torch.cat(v).contiguous() for t, v in arrays.items()}
    if labels is not None:
        tensors["labels"] = torch.tensor(labels, dtype=torch.int64)
    if out.suffix == ".npz":

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                extra = {} if classes is None else {"classes": np.array(classes)}
                arrays: dict[str, Any] = {**extra, **{k: v.numpy() for k, v in tensors.items()}}
                np.savez(f, files=np.array(files), **arrays)
    else:
        from safetensors.torch import save_file

        meta = {"files": json.dumps(files), "weights": str(weights), "preprocessing": json.dumps(member.view.__dict__)}
        if classes is not None:
            meta["classes"] = json.dumps(classes)

        def write(tmp: str) -> None:
            save_file(tensors, tmp, metadata=meta)

    atomic_write(out, write)
    return {"output": str(out), "images": len(files), "arrays": {k: list(v.shape) for k, v in tensors.items()},
            "weights": describe(member)}  # fmt: skip
