"""Weight interop: our own `save_pretrained` / `from_pretrained` format (config.json + model.safetensors),
and loading the files users already have (torchvision and timm state_dicts, our training checkpoints).

Nothing here unpickles arbitrary objects: .pth/.pt files are read with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import UserError
from ..models.config import InceptionConfig, get_config
from ..models.inception import Inception3
from ..utils.io import atomic_write, atomic_write_text, load_torch_file
from .keras import load_keras
from .loading import LoadReport, load_into

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(model: Inception3, directory: str | os.PathLike[str], classes: list[str] | None = None) -> Path:
    """Write config.json and model.safetensors (the Hugging Face Hub layout), each atomically."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"architecture": "inception_v3", "config": model.config.to_dict(), "classes": classes or []}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG_NAME, json.dumps(meta, indent=2))
    return out


def from_pretrained(directory: str | os.PathLike[str], **overrides: Any) -> Inception3:
    """Rebuild a model saved by `save_pretrained` (config overrides such as num_classes are allowed)."""
    model, _ = load_pretrained(directory, **overrides)
    return model


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata (config, classes) from any supported file or directory."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise UserError(f"{path} is not a saved model: expected {CONFIG_NAME} and {WEIGHTS_NAME} in it")
        try:
            meta = json.loads((path / CONFIG_NAME).read_text())
        except ValueError:
            raise UserError(f"{path / CONFIG_NAME} is not valid JSON") from None
        return _read_safetensors(path / WEIGHTS_NAME), meta
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return _read_safetensors(path), {}
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        state = load_torch_file(path, what="weights file")
        if not isinstance(state, dict):
            raise UserError(f"{path} does not hold a state_dict (found {type(state).__name__})")
        if "format" in state and "model" in state:  # a training checkpoint of this project
            weights = state["ema"]["module"] if "ema" in state else state["model"]
            return weights, {"config": state["model_config"], "classes": state.get("classes", []),
                             "source": "averaged weights" if "ema" in state else "raw weights"}  # fmt: skip
        for key in ("state_dict", "model"):  # common wrappers (timm's train checkpoints, others)
            if isinstance(state.get(key), dict):
                state = state[key]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if not all(isinstance(v, Tensor) for v in state.values()):
            raise UserError(f"{path} does not hold a state_dict of tensors")
        return state, {}
    raise UserError(f"unknown weights format {path.suffix or path.name!r}; "
                    f"expected a directory from save_pretrained, .safetensors, .pth or .pt")  # fmt: skip


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"cannot read {path}: {exc}") from None


def load_pretrained(
    path: str | os.PathLike[str], preset: str = "inception_v3", **overrides: Any
) -> tuple[Inception3, LoadReport]:
    """Build a model for the weights at `path` and load them.

    The config comes from the file when it has one (ours), else from `preset` with the file's class
    count. A different `num_classes` keeps every weight but the two classifiers, which are replaced.
    torchvision's and timm's ImageNet weights expect TF's [-1, 1] input, which is our default
    mean/std (0.5): their hidden `transform_input` becomes that explicit normalization.
    """
    if str(path).endswith(".h5"):
        return load_keras(Path(path), preset, **overrides)
    state, meta = read_state_dict(path)
    base = InceptionConfig.from_dict(meta["config"]) if "config" in meta else get_config(preset)
    file_classes = _file_num_classes(state)
    if "config" not in meta and file_classes is not None:
        base = base.replace(num_classes=file_classes)
    if "AuxLogits.fc.weight" not in state and "config" not in meta:
        base = base.replace(aux_logits=False)
    wanted = base.replace(**overrides) if overrides else base
    model = Inception3(wanted)
    report = load_into(model, state, str(path))
    if "num_classes" not in overrides:
        report.classes = list(meta.get("classes", []))
    report.source = meta.get("source", report.source)
    return model, report


def _file_num_classes(state: dict[str, Tensor]) -> int | None:
    return int(state["fc.weight"].shape[0]) if "fc.weight" in state else None
