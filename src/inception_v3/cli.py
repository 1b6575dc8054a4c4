"""The `inception-v3` command line: one subcommand per job, one clear line for bad input."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UserError
from .models.config import PRESETS


def _cmd_models(args: argparse.Namespace) -> None:
    from .models.inception import Inception3

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
    from .models.accounting import format_summary, summarize
    from .models.inception import create_model

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


def _cmd_recipes(args: argparse.Namespace) -> None:
    from .training.recipes import RECIPES, get_recipe

    if args.json:
        print(json.dumps({name: get_recipe(name).to_dict() for name in RECIPES}, indent=2))
        return
    for name, (description, overrides) in RECIPES.items():
        print(f"{name:<22}{description}")
        print(f"{'':<22}" + ", ".join(f"{k}={v}" for k, v in overrides.items()))


def _cmd_train(args: argparse.Namespace) -> None:
    from .training.loop import train
    from .training.recipes import get_recipe
    from .training.settings import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    cfg = get_recipe(args.recipe, **overrides)
    if args.resume:  # continue with the run's own settings; options given now still win
        saved = _saved_train_config(Path(cfg.out_dir) / cfg.name / "config.json", fields)
        if saved:
            cfg = TrainConfig(**{**saved, **overrides})
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if not result.finished:
        raise SystemExit(130)


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduction.report import write_report
    from .reproduction.runner import reproduce

    out_dir = Path(args.out_dir)
    records = Path(args.records) if args.records else out_dir / "records"
    report = Path(args.report) if args.report else out_dir / "reproduction.md"
    if args.report_only:
        if not records.is_dir():
            raise UserError(f"no run records in {records}; run `inception-v3 reproduce EXPERIMENT` first")
        write_report(records, report)
        print(f"report: {report}")
        return
    if not args.experiments:
        raise UserError("name at least one experiment: table2, table3, factorization, aux, label-smoothing, crops")
    if not reproduce(args.experiments, args.budget, args.seeds, out_dir, records, report, args.data_dir):
        raise SystemExit(130)


def _cmd_convert(args: argparse.Namespace) -> None:
    from .interop.pretrained import load_pretrained, save_pretrained

    dst = Path(args.dst)
    if dst.exists() and any(dst.iterdir()) and not args.overwrite:
        raise UserError(f"{dst} is not empty; choose another folder or pass --overwrite")
    overrides = {"num_classes": args.num_classes} if args.num_classes else {}
    model, report = load_pretrained(args.src, preset=args.preset, **overrides)
    save_pretrained(model, dst, classes=report.classes)
    print(f"{args.src} -> {dst}: {report.summary()}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.protocols import format_result, run_evaluation

    result = run_evaluation(args.checkpoints, args.dataset, args.data, args.crops, args.out, args.limit,
                            show_progress=not args.json, central_fraction=args.central_fraction, mode=args.mode,
                            calibration=args.calibration)  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))


def _cmd_predict(args: argparse.Namespace) -> None:
    from .evaluation.predict import predict

    results = predict([args.checkpoint], args.images, args.top_k, args.crops)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["image"] + ": " + ", ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"]))


def _cmd_export(args: argparse.Namespace) -> None:
    from .deploy.export import export_model
    from .interop.pretrained import load_pretrained

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; choose another path or pass --overwrite")
    model, _ = load_pretrained(args.checkpoint)
    info = export_model(model, args.format, output, features=args.features)
    print(json.dumps(info, indent=2) if args.json else
          f"wrote {info['output']} ({info['format']}, {info['bytes']:,} bytes, input {info['input']}, "
          f"output {info['output_name']})" + (f"; ONNX vs PyTorch max abs diff {info['onnx_max_abs_diff']:.2e}"
                                              if "onnx_max_abs_diff" in info else ""))  # fmt: skip


def _cmd_fid(args: argparse.Namespace) -> None:
    from .evaluation.fid import frechet_distance, load_fid_network, save_stats, stats_for

    if args.save_stats and Path(args.save_stats).exists():
        raise UserError(f"{args.save_stats} exists; choose another path")
    model = load_fid_network(args.weights) if args.weights else None
    mu1, s1 = stats_for(args.a, model, args.batch_size, args.dims)
    if args.save_stats:
        save_stats(mu1, s1, args.save_stats)
    if args.b is None:
        print(f"statistics of {args.a} saved to {args.save_stats}")
        return
    mu2, s2 = stats_for(args.b, model, args.batch_size, args.dims)
    value = frechet_distance(mu1, s1, mu2, s2)
    print(json.dumps({"fid": value, "a": args.a, "b": args.b}) if args.json else f"FID {value:.6f}")


def _saved_train_config(path: Path, fields: set[str]) -> dict[str, Any]:
    """The settings a run was started with (empty if its config.json is missing or unreadable)."""
    try:
        saved = json.loads(path.read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {k: v for k, v in saved.items() if k in fields} if isinstance(saved, dict) else {}


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, typed, documented and limited by the field's metadata; unset
    options keep the recipe's value."""
    from .training.settings import TrainConfig, allowed, field_type

    p.add_argument("--recipe", default="fashion-mnist", help="named recipe (see `inception-v3 recipes`); "
                   "its values replace the defaults below (default: fashion-mnist)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in OUT_DIR/NAME from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a finished or abandoned run in OUT_DIR/NAME")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta, (kind, _) = f.metadata, field_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        paper = f"; paper: {meta['paper']}" if meta["paper"] is not None else ""
        limits = "" if kind is bool or (kind is str and not meta["choices"]) else f"; {allowed(meta)}"
        text = f"{meta['help']} (default: {f.default}{paper}{limits})".replace("%", "%%")
        if kind is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            p.add_argument(flag, dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=text)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where the help is (exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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

    p = sub.add_parser("recipes", help="list the training recipes (the paper's and the CPU ones)")
    p.add_argument("--json", action="store_true", help="every recipe's full settings")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("convert", help="convert torchvision/timm/our weights to config.json + model.safetensors")
    p.add_argument("src", help="a .pth/.pt/.safetensors file, a training checkpoint, or a save_pretrained folder")
    p.add_argument("dst", help="output folder")
    p.add_argument("--preset", default="inception_v3", help="architecture of a bare state_dict")
    p.add_argument("--num-classes", type=int, help="replace both classifiers with this many classes")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty DST")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("evaluate", help="top-1/top-5, per-class accuracy and calibration under the paper's crops")
    p.add_argument("checkpoints", nargs="+", help="one checkpoint or weights file, or several for an ensemble")
    p.add_argument("--dataset", default="imagefolder", choices=["imagefolder", "fashion-mnist"])
    p.add_argument("--data", help="folder with one sub-folder per class (or the Fashion-MNIST folder)")
    p.add_argument("--crops", default="single", choices=["single", "10", "144"], help="crop protocol")
    p.add_argument("--central-fraction", type=float, default=0.875,
                   help="central crop of the single crop (TF: 0.875; 1.0 for Fashion-MNIST models)")  # fmt: skip
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument(
        "--mode",
        default="fp32",
        choices=["fp32", "fast", "int8"],
        help="fast: BN folded + channels_last + bf16 where supported; int8: quantized for x86 CPUs",
    )
    p.add_argument("--calibration", help="int8: folder of training images to calibrate on (Fashion-MNIST: its "
                   "training split)")  # fmt: skip
    p.add_argument("--out", help="folder for metrics.json, confusion.png and reliability.png")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="top-k labels for images, files, folders or globs")
    p.add_argument("checkpoint", help="a checkpoint, weights file or save_pretrained folder")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--crops", default="single", choices=["single", "10", "144"])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="BN-folded inference graph: torchscript, onnx or exported-program")
    p.add_argument("checkpoint", help="a checkpoint, weights file or save_pretrained folder")
    p.add_argument("--format", required=True, choices=["torchscript", "onnx", "exported-program"])
    p.add_argument("--output", required=True, help="file to write")
    p.add_argument("--features", action="store_true", help="output the pooled 2048-d features, not logits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("fid", help="Frechet Inception Distance between two image folders or .npz statistics")
    p.add_argument("a", help="folder of images or .npz statistics")
    p.add_argument("b", nargs="?", help="folder of images or .npz statistics (omit with --save-stats)")
    p.add_argument("--weights", help="the FID network's weights, e.g. pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--save-stats", help="write A's statistics (mu, sigma) to this .npz")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--dims", type=int, default=2048, choices=[64, 192, 768, 2048], help="feature tap (pool3: 2048)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_fid)

    p = sub.add_parser("train", help="train with the paper's method; writes runs/NAME")
    _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("reproduce", help="rerun the paper's experiments (Tables 2-5, Sections 3, 4, 7) over seeds")
    p.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        help="table2, table3, factorization, aux, label-smoothing, crops",
    )
    p.add_argument(
        "--budget",
        default="cpu",
        help="smoke (a minute), cpu (2-core minutes per run), gpu (one H100) or paper (ImageNet)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant")
    p.add_argument("--data-dir", help="Fashion-MNIST folder (default: Debian's) or ImageNet train/ val/ for paper")
    p.add_argument("--out-dir", default="runs/reproduce", help="where the training runs (checkpoints) go")
    p.add_argument("--records", help="where the run records go (default: OUT_DIR/records)")
    p.add_argument("--report", help="the report to (re)write (default: OUT_DIR/reproduction.md)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the records; run nothing")
    p.set_defaults(func=_cmd_reproduce)
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
