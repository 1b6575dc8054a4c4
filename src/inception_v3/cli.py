"""The `inception-v3` command line: one subcommand per job, one clear line for bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .config import PRESETS
from .errors import UserError


def _cmd_models(args: argparse.Namespace) -> None:
    from .model import Inception3

    rows = []
    for preset in PRESETS.values():
        model = Inception3(preset.config)
        rows.append({
            "name": preset.name,
            "description": preset.description,
            "params": sum(p.numel() for p in model.parameters()),
            "input": preset.config.receptive_field,
            "min_input": model.min_size,
            "config": preset.config.to_dict(),
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<32}{'params':>13}{'input':>7}{'min':>5}  description")
    for r in rows:
        print(f"{r['name']:<32}{r['params']:>13,}{r['input']:>7}{r['min_input']:>5}  {r['description']}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from .accounting import format_summary, summarize
    from .model import create_model

    overrides: dict[str, Any] = {}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    if args.width_multiplier is not None:
        overrides["width_multiplier"] = args.width_multiplier
    model = create_model(args.preset, **overrides)
    resolution = args.resolution or model.config.receptive_field
    if resolution < model.min_size:
        raise UserError(
            f"resolution {resolution} is below this model's minimum input {model.min_size}; "
            f"pass --resolution {model.min_size} or more"
        )
    summary = summarize(model, resolution)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inception-v3",
        description="Inception-v3 (Szegedy et al., 2016): models, accounting, training and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the model presets (the paper's variants)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("summary", help="per-module shapes, parameters and multiply-adds")
    p.add_argument("--preset", default="inception_v3", help="model preset (see `inception-v3 models`)")
    p.add_argument("--resolution", type=int, help="input side in pixels (default: the preset's own)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_summary)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"inception-v3 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inception-v3 {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
