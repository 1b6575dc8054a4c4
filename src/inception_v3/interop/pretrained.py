"""Weights from anywhere into our model: `load_pretrained(weights)` takes a name of published weights
(`inception-v3 weights`), an http(s) URL, or a path (torchvision/timm .pth and .safetensors, Keras .h5,
our training checkpoints and `save_pretrained` folders). Our own format is `save_pretrained` /
`from_pretrained`: config.json + model.safetensors, the Hugging Face hub layout.

Nothing here unpickles arbitrary objects: .pth/.pt files are read with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import UserError, reason
from ..models.config import InceptionConfig, get_config
from ..models.inception import Inception3
from ..utils.download import fetch_url
from ..utils.io import StrPath, atomic_write, atomic_write_text, load_torch_file
from .keras import read_keras_state_dict
from .loading import AUX_KEYS, CLASSIFIER_KEYS, LoadReport, load_into
from .registry import WeightsSpec, fetch, find_weights, list_weights

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".h5")
# The single-crop preprocessing of a file that says nothing about it: TF-slim's central crop of 0.875.
DEFAULT_PREPROCESSING = {"resize": "squash", "crop_fraction": 0.875, "interpolation": "bilinear"}


def save_pretrained(
    model: Inception3, directory: StrPath, classes: list[str] | None = None, preprocessing: dict[str, Any] | None = None
) -> Path:
    """Write config.json (config, class names, preprocessing) and model.safetensors, each atomically."""
    out = Path(directory)
    meta = {
        "architecture": "inception_v3",
        "config": model.config.to_dict(),
        "classes": classes or [],
        "preprocessing": preprocessing or DEFAULT_PREPROCESSING,
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG_NAME, json.dumps(meta, indent=2))
    return out


def from_pretrained(weights: StrPath, **overrides: Any) -> Inception3:
    """The model of `load_pretrained` without its report: an alias of `create_model(weights=weights)`."""
    return load_pretrained(weights, **overrides)[0]


def convert(
    src: StrPath, dst: StrPath, preset: str = "inception_v3", num_classes: int | None = None, overwrite: bool = False
) -> LoadReport:
    """Weights from any ecosystem (`load_pretrained`) saved in our format (`save_pretrained`) in `dst`."""
    out = Path(dst)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; choose another folder or pass `overwrite=True`")
    overrides: dict[str, Any] = {"num_classes": num_classes} if num_classes is not None else {}
    model, report = load_pretrained(src, preset=preset, **overrides)
    save_pretrained(model, out, classes=report.classes, preprocessing=report.preprocessing)
    return report


def resolve_weights(weights: StrPath, progress: bool = True) -> tuple[Path, WeightsSpec | None]:
    """The local file (downloaded if needed) for a path, an http(s) URL or a name; and the name's entry."""
    text = str(weights)
    path = Path(text).expanduser()
    if path.exists():
        return path, None
    if text.startswith(("http://", "https://")):
        return fetch_url(text, progress=progress), None
    spec = find_weights(text)
    if spec is not None:
        return fetch(spec, progress), spec
    if path.suffix in WEIGHT_SUFFIXES or os.sep in text:
        raise UserError(f"weights file {path} does not exist")
    names = ", ".join(s.name for s in list_weights())
    raise UserError(
        f"unknown weights {text!r}: not a file, a URL or a known name ({names}); `inception-v3 weights` lists them"
    )


def read_state_dict(path: StrPath) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata (config, classes, preprocessing) from a .pth/.pt/.safetensors file or a folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise UserError(f"{path} is not a saved model: expected {CONFIG_NAME} and {WEIGHTS_NAME} in it")
        try:
            meta = json.loads((path / CONFIG_NAME).read_text())
        except ValueError:
            raise UserError(f"{path / CONFIG_NAME} is not valid JSON") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise UserError(f"{path / CONFIG_NAME} has no model config; it was not written by save_pretrained")
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
            return _training_checkpoint(state, path)
        for key in ("state_dict", "model"):  # common wrappers (timm's train checkpoints, others)
            if isinstance(state.get(key), dict):
                state = state[key]
        state = {str(k).removeprefix("module."): v for k, v in state.items()}
        if not state or not all(isinstance(v, Tensor) for v in state.values()):
            raise UserError(f"{path} does not hold a state_dict of tensors")
        return state, {}
    raise UserError(
        f"unknown weights format {path.suffix or path.name!r}; expected a save_pretrained folder, "
        f".safetensors, .pth, .pt or a Keras .h5"
    )


def _training_checkpoint(state: dict[str, Any], path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    try:
        weights = state["ema"]["module"] if "ema" in state else state["model"]
        eval_crop = float(state.get("train_config", {}).get("eval_crop", 0.875))
        meta = {
            "config": dict(state["model_config"]),
            "classes": list(state.get("classes", [])),
            "source": "averaged weights" if "ema" in state else "raw weights",
            "preprocessing": {**DEFAULT_PREPROCESSING, "crop_fraction": eval_crop},
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path} looks like a training checkpoint of this project but is incomplete") from None
    return weights, meta


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"cannot read {path}: {reason(exc)} (damaged or not a safetensors file)") from None


def load_pretrained(
    weights: StrPath, preset: str = "inception_v3", progress: bool = True, **overrides: Any
) -> tuple[Inception3, LoadReport]:
    """Build a model for `weights` (a name, URL or path) and load them strictly. The config comes from the file
    when it has one (ours), from the named entry, or from `preset` with the file's class count and aux head.
    `num_classes` (another class count, or a file without a classifier) replaces both classifiers;
    `aux_logits=True` on a file without the aux head adds a new one; every other tensor must come from the file."""
    path, spec = resolve_weights(weights, progress)
    preset = spec.preset if spec is not None else preset
    notes: list[str] = []
    if path.suffix == ".h5":
        state, file_classes = read_keras_state_dict(path, preset)
        meta: dict[str, Any] = {}
        base = get_config(preset, aux_logits=False, pool_include_pad=False, num_classes=file_classes or 1000)
    else:
        state, meta = read_state_dict(path)
        file_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else None
        if "config" in meta:
            base = InceptionConfig.from_dict(meta["config"])
        else:
            base = get_config(preset, num_classes=file_classes or 1000, aux_logits="AuxLogits.fc.weight" in state)
    if spec is not None:
        base = base.replace(mean=spec.mean, std=spec.std)
    if not base.aux_logits and "config" not in meta:
        notes.append("the file has no aux head: the model is built without one")
    wanted = base.replace(**overrides) if overrides else base
    fresh: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    if file_classes is None and "config" not in meta:
        if "num_classes" not in overrides and (spec is None or spec.has_classifier):
            raise UserError(f"{path} has no classifier (fc); pass num_classes to add a new one")
        fresh += CLASSIFIER_KEYS
        notes.append("the file has no classifier: a new one is initialized")
    elif "num_classes" in overrides and wanted.num_classes != (file_classes or base.num_classes):
        fresh += CLASSIFIER_KEYS
    if wanted.aux_logits and not base.aux_logits:
        fresh += AUX_KEYS
        notes.append("new aux head (not in the file)")
    elif base.aux_logits and not wanted.aux_logits:
        dropped += AUX_KEYS
        notes.append("the file's aux head is not used")
    model = Inception3(wanted)
    report = load_into(model, state, str(weights), fresh, dropped)
    report.notes += notes
    report.weights, report.file = str(weights), str(path)
    report.source = meta.get("source", report.source)
    report.preprocessing = dict(meta.get("preprocessing") or (spec.preprocessing() if spec else DEFAULT_PREPROCESSING))
    if not any(k.startswith("fc.") for k in report.replaced + report.new):  # the file's classes still apply
        report.classes = list(meta.get("classes") or (spec.class_names() if spec else []))
    return model, report
