"""Keras InceptionV3 weights: a Keras 3 `.weights.h5` or the released Keras 2 `.h5`, mapped onto our
layers (Keras lists a functional model's layers by graph depth; its batch norms have no gamma)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx

from ..errors import UserError
from ..models.config import get_config
from ..models.inception import Inception3
from ..models.layers import ConvBN

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


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
            calls = [n for n in graph.nodes if n.op == "call_module" and str(n.target).endswith(".conv")]
            conv_depth = {str(n.target).rsplit(".", 1)[0]: depth[n] for n in calls}
            order += [f"{name}.{c}" for c in sorted(conv_depth, key=lambda c: (-conv_depth[c], created.index(c)))]
    return order


def keras_state_dict(layers: list[tuple[str, list[Tensor]]], model: Inception3) -> dict[str, Tensor]:
    """Keras InceptionV3 arrays under our names: kernels (kh, kw, in, out) -> (out, in, kh, kw); its batch
    norms have no gamma (scale=False) -> gamma = 1; the Dense kernel (in, out) is transposed."""
    convs = [v for _, v in layers if len(v) == 1 and v[0].ndim == 4]
    norms = [v for _, v in layers if len(v) in (3, 4) and v[0].ndim == 1]
    dense = [v for _, v in layers if len(v) == 2 and v[0].ndim == 2]
    ours = keras_layer_order(model)
    if len(convs) != len(ours) or len(norms) != len(ours):
        raise UserError(
            f"the Keras file has {len(convs)} conv and {len(norms)} batch-norm layers; "
            f"Inception-v3 has {len(ours)} of each"
        )
    state: dict[str, Tensor] = {}
    for name, conv, norm in zip(ours, convs, norms, strict=True):
        state[f"{name}.conv.weight"] = conv[0].permute(3, 2, 0, 1).contiguous()
        gamma = norm[0] if len(norm) == 4 else torch.ones_like(norm[-1])
        values = (gamma, *norm[-3:], torch.tensor(0))  # norm[-3:]: beta, moving mean, moving variance
        state.update({f"{name}.bn.{key}": v for key, v in zip(_BN_KEYS, values, strict=True)})
    if dense:
        state["fc.weight"], state["fc.bias"] = dense[0][0].t().contiguous(), dense[0][1]
    return state


def read_keras_state_dict(path: Path, preset: str) -> tuple[dict[str, Tensor], int | None]:
    """A Keras InceptionV3 file as our state dict, and its class count (None: saved without the classifier)."""
    template = Inception3(get_config(preset, aux_logits=False, num_classes=1))  # only the layer order matters
    state = keras_state_dict(read_keras_weights(path), template)
    return state, int(state["fc.bias"].shape[0]) if "fc.bias" in state else None
