"""Weight interop: our own `save_pretrained` / `from_pretrained` format (config.json + model.safetensors),
and loading the files users already have (torchvision and timm state_dicts, our training checkpoints).

Nothing here unpickles arbitrary objects: .pth/.pt files are read with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, fx

from .blocks import ConvBN
from .checkpoint import atomic_write, load_checkpoint
from .config import InceptionConfig, get_config
from .errors import UserError
from .model import Inception3

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CLASSIFIER_KEYS = ("fc.", "AuxLogits.fc.")


@dataclass
class LoadReport:
    """Which keys a load took from the file, which it replaced (new classifiers), which were missing."""

    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # the class names stored with the weights, if any
    source: str = "weights as stored"  # which weights of a training checkpoint were used

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)} tensors, replaced {len(self.replaced)} (new classifier), "
                f"missing {len(self.missing)}, unused {len(self.unexpected)}")  # fmt: skip


def save_pretrained(model: Inception3, directory: str | os.PathLike[str], classes: list[str] | None = None) -> Path:
    """Write config.json and model.safetensors (the Hugging Face Hub layout), each atomically."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"architecture": "inception_v3", "config": model.config.to_dict(), "classes": classes or []}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write(out / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
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
        state = load_checkpoint(path)
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


def read_keras_weights(path: Path) -> list[tuple[str, list[Tensor]]]:
    """Keras weights, (layer, arrays) in Keras' layer order: a Keras 3 `.weights.h5` (layers/<name>/vars/<i>)
    or a Keras 2 `.h5` such as the released inception_v3_weights_tf_dim_ordering_tf_kernels.h5."""
    try:
        import h5py
    except ImportError:
        raise UserError("Keras weight files need h5py: pip install 'inception-v3[keras]'") from None

    def arrays(group: Any, names: list[str]) -> list[Tensor]:
        return [torch.from_numpy(group[n][()]) for n in names]

    out = []
    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:
                for name, group in f["layers"].items():
                    if "vars" in group and len(group["vars"]):
                        out.append((name, arrays(group["vars"], [str(i) for i in range(len(group["vars"]))])))
                return sorted(out, key=lambda item: _natural(item[0]))
            root = f.get("model_weights", f)
            for raw in root.attrs.get("layer_names", []):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in root[name].attrs["weight_names"]]
                if names:
                    out.append((name, arrays(root[name], names)))
    except OSError as exc:
        raise UserError(f"cannot read {path} as HDF5: {exc}") from None
    if not out:
        raise UserError(f"{path} holds no Keras layer weights")
    return out


def _natural(key: str) -> tuple[str, int]:
    base, _, num = key.rpartition("_")
    return (base, int(num)) if num.isdigit() and base else (key, 0)


def keras_layer_order(model: Inception3) -> list[str]:
    """Our ConvBN names in the order Keras 3 lists InceptionV3's layers: block by block, within a block
    farthest from the block's output first (Keras sorts a functional model's layers by depth), ties in
    creation order."""
    order = []
    for name, child in model.named_children():
        if isinstance(child, ConvBN):
            order.append(name)
        elif name.startswith("Mixed"):
            graph = fx.symbolic_trace(child).graph
            depth: dict[fx.Node, int] = {}
            for node in reversed(graph.nodes):
                depth[node] = max((depth[u] + 1 for u in node.users), default=0)
            created = [n for n, m in child.named_children() if isinstance(m, ConvBN)]
            convs = [(str(n.target).rsplit(".", 1)[0], depth[n]) for n in graph.nodes
                     if n.op == "call_module" and str(n.target).endswith(".conv")]  # fmt: skip
            convs.sort(key=lambda c: (-c[1], created.index(c[0])))
            order += [f"{name}.{c}" for c, _ in convs]
    return order


def keras_state_dict(layers: list[tuple[str, list[Tensor]]], model: Inception3) -> dict[str, Tensor]:
    """Keras InceptionV3 arrays under our names: kernels (kh, kw, in, out) -> (out, in, kh, kw); its batch
    norms have no gamma (scale=False) -> gamma = 1; the Dense kernel (in, out) is transposed."""
    convs = [v for _, v in layers if len(v) == 1 and v[0].ndim == 4]
    norms = [v for _, v in layers if len(v) in (3, 4) and v[0].ndim == 1]
    dense = [v for _, v in layers if len(v) == 2 and v[0].ndim == 2]
    ours = keras_layer_order(model)
    if len(convs) != len(ours) or len(norms) != len(ours):
        raise UserError(f"the Keras file has {len(convs)} conv and {len(norms)} batch-norm layers; "
                        f"Inception-v3 has {len(ours)} of each")  # fmt: skip
    state: dict[str, Tensor] = {}
    for name, conv, norm in zip(ours, convs, norms, strict=True):
        state[f"{name}.conv.weight"] = conv[0].permute(3, 2, 0, 1).contiguous()
        gamma = norm[0] if len(norm) == 4 else torch.ones_like(norm[-1])
        beta, mean, var = norm[-3:]
        state.update({f"{name}.bn.weight": gamma, f"{name}.bn.bias": beta, f"{name}.bn.running_mean": mean,
                      f"{name}.bn.running_var": var, f"{name}.bn.num_batches_tracked": torch.tensor(0)})  # fmt: skip
    if dense:
        state["fc.weight"], state["fc.bias"] = dense[0][0].t().contiguous(), dense[0][1]
    return state


def _load_keras(path: Path, preset: str, **overrides: Any) -> tuple[Inception3, LoadReport]:
    """Keras InceptionV3: no aux head, TF's "same" average pooling (padding not counted), [-1, 1] input."""
    layers = read_keras_weights(path)
    dense = [v for _, v in layers if len(v) == 2 and v[0].ndim == 2]
    cfg = get_config(preset, aux_logits=False, pool_include_pad=False,
                     num_classes=int(dense[0][1].shape[0]) if dense else 1000)  # fmt: skip
    model = Inception3(cfg.replace(**overrides) if overrides else cfg)
    return model, _load_into(model, keras_state_dict(layers, model), str(path))


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
        return _load_keras(Path(path), preset, **overrides)
    state, meta = read_state_dict(path)
    base = InceptionConfig.from_dict(meta["config"]) if "config" in meta else get_config(preset)
    file_classes = _file_num_classes(state)
    if "config" not in meta and file_classes is not None:
        base = base.replace(num_classes=file_classes)
    if "AuxLogits.fc.weight" not in state and "config" not in meta:
        base = base.replace(aux_logits=False)
    wanted = base.replace(**overrides) if overrides else base
    model = Inception3(wanted)
    report = _load_into(model, state, str(path))
    if "num_classes" not in overrides:
        report.classes = list(meta.get("classes", []))
    report.source = meta.get("source", report.source)
    return model, report


def _file_num_classes(state: dict[str, Tensor]) -> int | None:
    return int(state["fc.weight"].shape[0]) if "fc.weight" in state else None


def _load_into(model: Inception3, state: dict[str, Tensor], source: str) -> LoadReport:
    """Copy matching tensors; a classifier of another size is left freshly initialized; any other
    mismatch is an error listing the first differing keys and shapes."""
    own = model.state_dict()
    report = LoadReport()
    mismatched = []
    for key, value in own.items():
        if key not in state:
            report.missing.append(key)
        elif state[key].shape != value.shape:
            if key.startswith(CLASSIFIER_KEYS):
                report.replaced.append(key)
            else:
                mismatched.append(f"{key}: file {list(state[key].shape)} vs model {list(value.shape)}")
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in state if k not in own]
    if mismatched or len(report.loaded) < len(own) // 2:
        details = mismatched[:3] or report.missing[:3]
        raise UserError(f"{source} does not fit this architecture ({len(mismatched)} shape mismatches, "
                        f"{len(report.missing)} missing keys); first: {'; '.join(details)}")  # fmt: skip
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state[key])
    return report


def freeze_until(model: Inception3, block: str) -> list[str]:
    """Freeze every parameter up to and including the top-level module `block` (e.g. "Mixed_6e")."""
    names = [name for name, _ in model.named_children()]
    if block not in names:
        raise UserError(f"unknown block {block!r}; valid blocks: {', '.join(names)}")
    frozen = []
    for name, child in model.named_children():
        if name == "AuxLogits":
            continue
        for p_name, p in child.named_parameters():
            p.requires_grad_(False)
            frozen.append(f"{name}.{p_name}")
        if name == block:
            break
    return frozen
