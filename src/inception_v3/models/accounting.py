"""Accounting on the real modules: parameters, multiply-adds, output shapes, depth, and the
Section 3 factorization savings next to the paper's figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from .config import PRESETS, RECEPTIVE_FIELDS, InceptionConfig
from .inception import Inception3
from .layers import ConvBN


@dataclass
class Row:
    """One top-level module of the network."""

    name: str
    output_shape: list[int]
    params: int
    macs: int


def _module_macs(module: nn.Module, output: Tensor) -> int:
    """Multiply-adds of one Conv2d or Linear producing `output` (batch 1)."""
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


def count_macs(module: nn.Module, run: Any) -> int:
    """Multiply-adds of every Conv2d/Linear inside `module` during the call `run()`."""
    total = 0

    def hook(m: nn.Module, _inputs: Any, output: Tensor) -> None:
        nonlocal total
        total += _module_macs(m, output)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def module_table(model: Inception3, resolution: int) -> list[Row]:
    """Per top-level module: output shape, parameters and multiply-adds at `resolution` (batch 1)."""
    rows: dict[str, Row] = {}
    owner: dict[nn.Module, str] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.Identity):
            continue
        rows[name] = Row(name, [], sum(p.numel() for p in child.parameters()), 0)
        for sub in child.modules():
            owner[sub] = name

    def hook(m: nn.Module, _inputs: Any, output: Tensor) -> None:
        row = rows[owner[m]]
        row.macs += _module_macs(m, output)
        if m is getattr(model, row.name):
            row.output_shape = list(output.shape)

    hooked = [m for m, name in owner.items() if isinstance(m, (nn.Conv2d, nn.Linear)) or m is getattr(model, name)]
    handles = [m.register_forward_hook(hook) for m in hooked]
    x = torch.zeros(1, model.in_chans, resolution, resolution)
    with_aux = model.AuxLogits is not None and resolution >= model.min_size_aux
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.forward_with_aux(x) if with_aux else model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [row for row in rows.values() if row.output_shape or row.params]


def receptive_field_costs(cfg: InceptionConfig) -> list[dict[str, Any]]:
    """Table 2: multiply-adds (main path) of the three receptive-field variants at their own size."""
    out: list[dict[str, Any]] = []
    for rf in RECEPTIVE_FIELDS:
        model = Inception3(cfg.replace(receptive_field=rf, aux_logits=False))
        x = torch.zeros(1, model.in_chans, rf, rf)
        out.append({"receptive_field": rf, "input": rf, "macs": count_macs(model, lambda m=model, x=x: m.eval()(x))})
    return [{**row, "ratio_to_299": row["macs"] / out[0]["macs"]} for row in out]


def _pair_macs(cfg: InceptionConfig, layers: list[tuple[int, int, Any, Any]], grid: int) -> int:
    """Multiply-adds of a stack of real ConvBN layers (in, out, kernel, padding) on a grid x grid map; a 4-tuple
    padding (left, right, top, bottom), for even kernels, is applied by a ZeroPad2d."""
    modules: list[nn.Module] = []
    for i, o, k, p in layers:
        if isinstance(p, tuple) and len(p) == 4:
            modules += [nn.ZeroPad2d(p), ConvBN(cfg, i, o, k)]
        else:
            modules.append(ConvBN(cfg, i, o, k, padding=p))
    stack = nn.Sequential(*modules)
    x = torch.zeros(1, layers[0][0], grid, grid)
    return count_macs(stack, lambda: stack.eval()(x))


def factorization_savings(model: Inception3) -> list[dict[str, Any]]:
    """Section 3 savings computed on ConvBN layers with this network's grids: `saving` keeps the filter count the
    same through the pair (the paper's assumption); `as_built_saving` uses the network's real channel counts."""
    cfg, m5, dbl2 = model.config, model.Mixed_5b, model.Mixed_5b.branch3x3dbl_2.conv
    k5, k7 = m5.branch5x5_2.conv.out_channels, model.Mixed_6b.branch7x7_2.conv.out_channels
    k3 = model.Mixed_7b.branch3x3_2a.conv.out_channels
    a, b, c = dbl2.in_channels, dbl2.out_channels, m5.branch3x3dbl_3.conv.out_channels

    def saving(grid: int, full: list[Any], factored: list[Any]) -> float:
        return 1 - _pair_macs(cfg, factored, grid) / _pair_macs(cfg, full, grid)

    def equal(k: int, layers: list[Any]) -> list[Any]:
        return [(k, k, kernel, padding) for kernel, padding in layers]

    cases: list[tuple[str, float | None, int, int, Any, Any]] = [  # grid, width, layers as (kernel, padding)
        ("5x5 -> two 3x3 (Mixed_5b)", 0.28, 35, k5, [(5, 2)], [(3, 1), (3, 1)]),
        ("3x3 -> 3x1 + 1x3 (Mixed_7b)", 0.33, 8, k3, [(3, 1)], [((3, 1), (1, 0)), ((1, 3), (0, 1))]),
        ("3x3 -> two 2x2", 0.11, 17, k7, [(3, 1)], [(2, (0, 1, 0, 1)), (2, (1, 0, 1, 0))]),
        ("7x7 -> 1x7 + 7x1 (Mixed_6b)", None, 17, k7, [(7, 3)], [((1, 7), (0, 3)), ((7, 1), (3, 0))]),
    ]
    out = [
        {"factorization": name, "paper_saving": paper, "saving": saving(grid, equal(k, full), equal(k, factored))}
        for name, paper, grid, k, full, factored in cases
    ]
    out[0]["as_built_saving"] = saving(35, [(a, c, 5, 2)], [(a, b, 3, 1), (b, c, 3, 1)])
    return out


def _longest_conv_path(module: nn.Module) -> int:
    """Most Conv2d/Linear layers on any path through `module` (traced with torch.fx)."""
    graph = fx.symbolic_trace(module)
    modules = dict(graph.named_modules())
    depth: dict[fx.Node, int] = {}
    for node in graph.graph.nodes:
        here = max((depth[n] for n in node.all_input_nodes), default=0)
        if node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
            here += 1
        depth[node] = here
    return max(depth.values(), default=0)


def layer_depth(model: Inception3) -> dict[str, int]:
    """Weight layers (conv + fc) on the deepest path, two ways: `all_modules` counts every conv on the longest
    path, grid-reduction modules included, plus fc; `paper_style` counts like the paper's Table 1: the stem convs,
    the Inception modules (Figures 5-7) and the final linear, not the grid reductions Mixed_6a / Mixed_7a."""
    stem = [n for n, m in model.named_children() if isinstance(m, ConvBN)]
    blocks = {n: _longest_conv_path(getattr(model, n)) for n, _ in model.named_children() if n.startswith("Mixed")}
    reductions = blocks["Mixed_6a"] + blocks["Mixed_7a"]
    total = len(stem) + sum(blocks.values()) + 1
    return {"stem_convs": len(stem), "all_modules": total, "paper_style": total - reductions}


def summarize(model: Inception3, resolution: int) -> dict[str, Any]:
    """Everything `inception-v3 summary` shows, as plain data."""
    rows = module_table(model, resolution)
    aux_params, aux_macs = next(((r.params, r.macs) for r in rows if r.name == "AuxLogits"), (0, 0))
    total_params = sum(p.numel() for p in model.parameters())
    return {
        "config": model.config.to_dict(),
        "resolution": resolution,
        "min_input_size": model.min_size,
        "min_input_size_with_aux": model.min_size_aux,
        "modules": [asdict(r) for r in rows],
        "params": total_params,
        "params_without_aux": total_params - aux_params,
        "macs": sum(r.macs for r in rows) - aux_macs,
        "aux_macs": aux_macs,
        "receptive_fields": receptive_field_costs(model.config),
        "factorization": factorization_savings(model),
        "depth": layer_depth(model),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a human-readable text table."""
    lines = [f"{'module':<16}{'output':>22}{'params':>14}{'mult-adds':>18}"]
    for r in s["modules"]:
        shape = " x ".join(str(v) for v in r["output_shape"][1:]) or "-"
        lines.append(f"{r['name']:<16}{shape:>22}{r['params']:>14,}{r['macs']:>18,}")
    lines += [
        "",
        f"parameters: {s['params']:,} ({s['params_without_aux']:,} without the aux head)",
        f"multiply-adds at {s['resolution']}x{s['resolution']}: {s['macs'] / 1e9:.3f} G"
        f" (+{s['aux_macs'] / 1e9:.3f} G in the aux head, training only)",
        f"minimum input: {s['min_input_size']}x{s['min_input_size']}"
        f" ({s['min_input_size_with_aux']}x{s['min_input_size_with_aux']} with the aux head)",
        "",
        "Table 2, receptive-field variants (main path, each at its own input size):",
    ]
    for r in s["receptive_fields"]:
        lines.append(
            f"  {r['receptive_field']:>3}x{r['receptive_field']:<3} {r['macs'] / 1e9:8.3f} G"
            f"  ({r['ratio_to_299']:.3f} x the 299 variant)"
        )
    lines += [
        "",
        "Section 3 factorization savings (multiply-adds, on ConvBN layers):",
        f"  {'factorization':<30}{'paper':>8}{'equal widths':>14}{'as built':>10}",
    ]
    for r in s["factorization"]:
        paper = f"{r['paper_saving']:.0%}" if r["paper_saving"] is not None else "-"
        built = f"{r['as_built_saving']:.0%}" if "as_built_saving" in r else "-"
        lines.append(f"  {r['factorization']:<30}{paper:>8}{r['saving']:>14.1%}{built:>10}")
    d = s["depth"]
    lines += [
        "",
        f"depth (conv + fc layers on the longest path): {d['all_modules']} counting every module;"
        f" {d['paper_style']} counting, as the paper's Table 1 does, the stem ({d['stem_convs']} convs here,"
        f" 6 in Table 1), the Inception modules and the final linear layer, but not the grid reductions",
    ]
    return "\n".join(lines)


def preset_table() -> list[dict[str, Any]]:
    """Every preset with its description, parameters, input size, minimum input and config."""
    rows = []
    for p in PRESETS.values():
        model, cfg = Inception3(p.config), p.config
        row = {"name": p.name, "description": p.description, "params": sum(t.numel() for t in model.parameters())}
        rows.append({**row, "input": cfg.receptive_field, "min_input": model.min_size, "config": cfg.to_dict()})
    return rows
