"""The `inception-v3` command line: one subcommand per job, one clear line for bad input."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UserError
from .models.config import PRESETS

WEIGHTS_HELP = (
    "a name (`inception-v3 weights`), an http(s) URL, a checkpoint, a weights file or a save_pretrained folder"
)


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
    if args.resume != "no":  # continue with the run's own settings; options given now still win
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
    data = {k: getattr(args, k) for k in ("dataset", "data_dir", "train_split", "val_split", "image_column",
                                          "label_column")}  # fmt: skip
    if not reproduce(args.experiments, args.budget, args.seeds, out_dir, records, report, data):
        raise SystemExit(130)


def _cmd_convert(args: argparse.Namespace) -> None:
    from .interop.pretrained import load_pretrained, save_pretrained

    dst = Path(args.dst)
    if dst.exists() and any(dst.iterdir()) and not args.overwrite:
        raise UserError(f"{dst} is not empty; choose another folder or pass --overwrite")
    overrides = {"num_classes": args.num_classes} if args.num_classes is not None else {}
    model, report = load_pretrained(args.src, preset=args.preset, **overrides)
    save_pretrained(model, dst, classes=report.classes, preprocessing=report.preprocessing)
    print(f"{args.src} -> {dst}: {report.summary()}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.protocols import format_result, run_evaluation

    result = run_evaluation(args.checkpoints, args.dataset, args.data, args.crops, args.out, args.limit,
                            show_progress=not args.json, central_fraction=args.central_fraction, mode=args.mode,
                            calibration=args.calibration, device=args.device, split=args.split,
                            columns=(args.image_column, args.label_column))  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))


def _cmd_predict(args: argparse.Namespace) -> None:
    from .evaluation.predict import predict

    results, loaded = predict([args.checkpoint], args.images, args.top_k, args.crops, args.central_fraction,
                              args.device)  # fmt: skip
    _say_loaded(loaded)
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
    model, report = load_pretrained(args.checkpoint)
    _say_loaded([f"{args.checkpoint}: {report.summary()}"])
    info = export_model(model, args.format, output, features=args.features)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    line = f"wrote {info['output']} ({info['format']}, {info['bytes']:,} bytes, input {info['input']}, "
    line += f"output {info['output_name']})"
    if "onnx_max_abs_diff" in info:
        diff, relative = info["onnx_max_abs_diff"], info["onnx_relative_diff"]
        line += f"; ONNX vs PyTorch max abs diff {diff:.2e} ({relative:.1e} of the output scale)"
    print(line)


def _cmd_fid(args: argparse.Namespace) -> None:
    from .evaluation.fid import load_fid_network, read_stats, save_stats, stats_for
    from .evaluation.image_sources import is_indexed
    from .evaluation.scores import frechet_distance
    from .utils.devices import resolve_device

    if args.save_stats and Path(args.save_stats).exists():
        raise UserError(f"{args.save_stats} exists; choose another path")
    if args.b is None and not args.save_stats:
        raise UserError("give two sources (folders or .npz), or one with --save-stats")
    sources = [s for s in (args.a, args.b) if s is not None]
    saved = {s: read_stats(s, "pytorch-fid", args.dims) for s in sources if s.endswith(".npz")}  # checked first
    folders = [s for s in sources if s not in saved]
    for src in folders:
        if not (is_indexed(src) or Path(src).is_dir()):
            raise UserError(f"{src} is neither a folder of images, wds:DIR/PATTERN, hf:NAME[:SPLIT] nor a .npz "
                            f"statistics file")  # fmt: skip
    if folders:  # images need the network
        device = resolve_device(args.device)
        model, report = load_fid_network(args.weights)
        model = model.to(device)
        _say_loaded([f"{args.weights}: {report.summary()}"])
        saved.update({s: stats_for(s, model, args.batch_size, args.dims) for s in folders})
    mu1, s1 = saved[args.a]
    if args.save_stats:
        save_stats(mu1, s1, args.save_stats)
    if args.b is None:
        print(f"statistics of {args.a} saved to {args.save_stats}")
        return
    mu2, s2 = saved[args.b]
    if mu1.shape != mu2.shape:
        raise UserError(f"the two statistics have different sizes ({len(mu1)} vs {len(mu2)}); use the same --dims")
    value = frechet_distance(mu1, s1, mu2, s2)
    print(json.dumps({"fid": value, "a": args.a, "b": args.b}) if args.json else f"FID {value:.6f}")


def _cmd_fidelity(args: argparse.Namespace) -> None:
    from .evaluation.fidelity import Settings, calculate_metrics, format_table

    options = {k: getattr(args, k) for k in Settings.__dataclass_fields__ if getattr(args, k, None) is not None}
    options["cache"] = not args.no_cache
    options["show_progress"] = not args.json
    result = calculate_metrics(args.input1, args.input2, **options)
    print(json.dumps(result, indent=2) if args.json else format_table(result, args.convention))


def _cmd_shards(args: argparse.Namespace) -> None:
    from .data.shards import write_shards

    info = write_shards(args.src, args.out, args.max_count, args.max_size, args.overwrite, args.train_split,
                        args.val_split, args.image_column, args.label_column)  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"wrote {info['output']}: {info['classes']} classes; train {info['train']['samples']:,} samples in "
          f"{info['train']['shards']} shard(s), val {info['val']['samples']:,} in {info['val']['shards']}")  # fmt: skip


def _cmd_weights(args: argparse.Namespace) -> None:
    from .interop.download import cached_file
    from .interop.registry import list_weights

    rows: list[dict[str, Any]] = []
    for w in list_weights():
        cached = cached_file(w)
        rows.append({"name": w.name, "aliases": list(w.aliases), "source": w.source, "description": w.description,
                     "url": w.download_url, "file_size": w.file_size, "sha256": w.sha256, "md5": w.md5,
                     "top1": w.top1, "top5": w.top5, "metrics_source": w.metrics_source,
                     "preprocessing": {**w.preprocessing(), "mean": list(w.mean), "std": list(w.std)},
                     "classes": f"{w.num_classes} ({'indices' if w.categories == 'index' else 'ImageNet-1k names'})",
                     "classifier": w.has_classifier, "preset": w.preset,
                     "cached": str(cached) if cached else None,
                     "cached_size": cached.stat().st_size if cached else None})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        p = r["preprocessing"]
        metrics = f"top-1 {r['top1']:.2f} / top-5 {r['top5']:.2f} ({r['metrics_source']})" if r["top1"] else (
            r["metrics_source"])  # fmt: skip
        check = (f"sha256 {r['sha256']}" if r["sha256"] else f"md5 {r['md5']}" if r["md5"] else
                 "sha256 from the hub, checked at download")  # fmt: skip
        norm = (
            "[-1, 1]"
            if p["mean"] == [0.5, 0.5, 0.5] and p["std"] == [0.5, 0.5, 0.5]
            else f"mean {p['mean']} std {p['std']}"
        )
        crop = (f"shorter side to 299/{p['crop_fraction']:.3f}, center crop 299" if p["resize"] == "shorter" else
                f"central {p['crop_fraction']:.3f}, resize to 299x299")  # fmt: skip
        where = f"cached at {r['cached']} ({r['cached_size']:,} bytes)" if r["cached"] else "not downloaded yet"
        print(f"{r['name']}  (also: {', '.join(r['aliases'])})\n  {r['description']} [{r['source']}]\n"
              f"  {r['url']}\n  size {r['file_size'] or 'given at download'}, {check}; {where}\n  {metrics}\n"
              f"  input: {crop}, {p['interpolation']}, {norm}; classes: {r['classes']}"
              + ("" if r["classifier"] else ", no classifier (features)"))  # fmt: skip


def _cmd_features(args: argparse.Namespace) -> None:
    from .evaluation.features import extract_features

    taps = _int_list(args.taps, "--taps") if args.taps else []
    info = extract_features(args.weights, args.images, args.output, taps, args.batch_size, args.central_fraction,
                            args.overwrite, show_progress=not args.json, device=args.device, dataset=args.dataset,
                            split=args.split, columns=(args.image_column, args.label_column))  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _say_loaded([info["weights"]])
        shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["arrays"].items())
        print(f"wrote {info['output']}: {info['images']} images; {shapes}")


def _add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="where the network runs: cpu, cuda, cuda:N or auto (default: "
                   "auto, CUDA when there is one)")  # fmt: skip


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"invalid {option} {text!r}: expected comma-separated integers such as 64,192,768") from None


def _say_loaded(lines: list[str]) -> None:
    """What was loaded, on stderr (stdout stays the command's result, e.g. JSON)."""
    for line in lines:
        print(f"weights: {line}", file=sys.stderr)


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
    p.add_argument("--resume", nargs="?", const="yes", default="no", choices=["yes", "auto"],
                   help="continue OUT_DIR/NAME from its newest readable checkpoint; `--resume auto` also starts the "
                   "run when it has none (one command line for the first launch and every restart)")  # fmt: skip
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


def _number(kind: type, low: float, low_open: bool = False, high: float | None = None) -> Any:
    """An argparse type: a number of `kind` in [low, high] ((low, high] with `low_open`), else a one-line error."""
    bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value != value or (value <= low if low_open else value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


COUNT = _number(int, 1)  # images, classes, seeds, labels: at least one
POSITIVE = _number(float, 0, low_open=True)
FRACTION = _number(float, 0, low_open=True, high=1.0)  # a crop fraction in (0, 1]


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
    p.add_argument("--resolution", type=COUNT, help="input side in pixels (default: the preset's own)")
    p.add_argument("--num-classes", type=COUNT, help="classes of the classifier")
    p.add_argument("--width-multiplier", type=POSITIVE, help="channel multiplier")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("recipes", help="list the training recipes (the paper's and the CPU ones)")
    p.add_argument("--json", action="store_true", help="every recipe's full settings")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("weights", help="list the published weights known by name (source, checksum, accuracy, input)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("convert", help="convert weights from any ecosystem to config.json + model.safetensors")
    p.add_argument("src", help=WEIGHTS_HELP)
    p.add_argument("dst", help="output folder")
    p.add_argument("--preset", default="inception_v3", help="architecture of a bare state_dict")
    p.add_argument("--num-classes", type=COUNT, help="replace both classifiers with this many classes")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty DST")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("evaluate", help="top-1/top-5, per-class accuracy and calibration under the paper's crops")
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="WEIGHTS",
        help="weights (a name, URL, checkpoint, file or folder), or several for an ensemble",
    )
    p.add_argument("--dataset", default="imagefolder", choices=["imagefolder", "fashion-mnist", "wds", "hf"])
    p.add_argument("--data", help="folder with one sub-folder per class (or the Fashion-MNIST folder); wds: the "
                   "shards' folder; hf: a hub name, a save_to_disk folder or Parquet files")  # fmt: skip
    p.add_argument("--split", help="wds: the shard pattern, e.g. 'val-{000000..000063}.tar'; hf: the split "
                   "(default: validation)")  # fmt: skip
    p.add_argument("--image-column", default="image", help="hf: the image column (default: image)")
    p.add_argument("--label-column", default="label", help="hf: the label column (default: label)")
    p.add_argument("--crops", default="single", choices=["single", "10", "144"], help="crop protocol")
    p.add_argument(
        "--central-fraction",
        type=FRACTION,
        help="crop fraction of the single crop (default: the one the weights come with; TF: 0.875)",
    )
    p.add_argument("--limit", type=COUNT, help="evaluate only the first N images")
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
    _add_device_option(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="top-k labels for images, files, folders or globs")
    p.add_argument("checkpoint", metavar="WEIGHTS", help=WEIGHTS_HELP)
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--top-k", type=COUNT, default=5, help="labels per image (default 5)")
    p.add_argument("--crops", default="single", choices=["single", "10", "144"])
    p.add_argument("--central-fraction", type=FRACTION, help="crop fraction (default: the one the weights come with)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_device_option(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="BN-folded inference graph: torchscript, onnx or exported-program")
    p.add_argument("checkpoint", metavar="WEIGHTS", help=WEIGHTS_HELP)
    p.add_argument("--format", required=True, choices=["torchscript", "onnx", "exported-program"],
                   help="torchscript is deprecated by PyTorch (still served by torch.jit.load and LibTorch); "
                   "exported-program is its successor")  # fmt: skip
    p.add_argument("--output", required=True, help="file to write")
    p.add_argument("--features", action="store_true", help="output the pooled 2048-d features, not logits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("fid", help="Frechet Inception Distance between two image folders or .npz statistics")
    p.add_argument("a", help="folder of images, wds:DIR/PATTERN (shards), hf:NAME[:SPLIT], or .npz statistics")
    p.add_argument("b", nargs="?", help="the same kinds (omit with --save-stats)")
    p.add_argument(
        "--weights",
        default="pytorch-fid/2015-12-05",
        help="the FID network: a name, URL or file (default: pytorch-fid's, downloaded once)",
    )
    p.add_argument("--save-stats", help="write A's statistics (mu, sigma) to this .npz")
    p.add_argument("--batch-size", type=COUNT, default=50)
    p.add_argument("--dims", type=int, default=2048, choices=[64, 192, 768, 2048], help="feature tap (pool3: 2048)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_device_option(p)
    p.set_defaults(func=_cmd_fid)

    p = sub.add_parser("fidelity", help="Inception Score, FID, KID and precision/recall of generated images, with "
                       "torch-fidelity's, clean-fid's or pytorch-fid's numbers")  # fmt: skip
    p.add_argument("input1", help="generated images: a folder (recursive), a .zip, fashion-mnist:train|test, "
                   "wds:DIR/PATTERN (shards), hf:NAME[:SPLIT], or a .npz of statistics (FID only)")  # fmt: skip
    p.add_argument("input2", nargs="?", help="reference images (the same kinds); needed by --fid, --kid and --prc")
    p.add_argument("--isc", action="store_true", help="Inception Score (of INPUT1; on the logits without the fc bias)")
    p.add_argument("--fid", action="store_true", help="Frechet Inception Distance")
    p.add_argument("--kid", action="store_true", help="Kernel Inception Distance")
    p.add_argument("--prc", action="store_true", help="precision, recall and F-score on Inception pool3 features "
                   "(torch-fidelity's default network for these is VGG-16: its numbers equal ours with "
                   "feature_extractor='inception-v3-compat')")  # fmt: skip
    p.add_argument("--convention", default="torch-fidelity", choices=["torch-fidelity", "clean-fid", "pytorch-fid"],
                   help="whose resize, normalization and arithmetic (default: torch-fidelity)")  # fmt: skip
    p.add_argument("--weights", default="pytorch-fid/2015-12-05",
                   help="the FID network: a name, URL or file (default: the tools' 2015 graph, downloaded "
                   "once)")  # fmt: skip
    p.add_argument("--isc-splits", type=COUNT, default=10, help="Inception Score splits (default 10)")
    p.add_argument("--kid-subsets", type=COUNT, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=_number(int, 2), default=1000,
                   help="images per KID subset (default 1000)")  # fmt: skip
    p.add_argument("--kid-degree", type=COUNT, default=3, help="KID polynomial kernel degree (default 3)")
    p.add_argument("--prc-neighborhood", type=COUNT, default=3, help="precision/recall k-th neighbour (default 3)")
    p.add_argument("--samples-shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="shuffle the samples before the Inception Score splits (default: on)")  # fmt: skip
    p.add_argument("--seed", type=_number(int, 0), default=2020, help="seed of the shuffle and the KID subsets "
                   "(default 2020, torch-fidelity's)")  # fmt: skip
    p.add_argument("--dims", type=int, default=2048, choices=[64, 192, 768, 2048], help="feature tap of FID, KID and "
                   "precision/recall (default 2048: pool3)")  # fmt: skip
    p.add_argument("--batch-size", type=COUNT, default=64, help="images per forward pass (default 64)")
    p.add_argument("--workers", type=_number(int, 0), default=2, help="decoding and resizing processes (default 2)")
    p.add_argument("--skip-bad-images", action="store_true", help="skip images that do not decode (and count them)")
    p.add_argument("--no-cache", action="store_true", help="compute features even if they are cached")
    p.add_argument("--json", action="store_true", help="one flat JSON object with torch-fidelity's keys")
    _add_device_option(p)
    p.set_defaults(func=_cmd_fidelity)

    p = sub.add_parser("shards", help="write WebDataset tar shards of an image folder (train/ and val/) or a Hugging "
                       "Face dataset, to train from with --dataset wds")  # fmt: skip
    p.add_argument("src", help="a folder with train/ and val/, one sub-folder per class; or a Hugging Face dataset: "
                   "hf:NAME_OR_PATH, or a save_to_disk folder")  # fmt: skip
    p.add_argument("--train-split", default="train", help="hf: the split written as train-*.tar (default: train)")
    p.add_argument("--val-split", default="validation", help="hf: the split written as val-*.tar (default: "
                   "validation)")  # fmt: skip
    p.add_argument("--image-column", default="image", help="hf: the image column (default: image)")
    p.add_argument("--label-column", default="label", help="hf: the label column (default: label)")
    p.add_argument("out", help="the folder for train-000000.tar ..., val-000000.tar ... and classes.txt")
    p.add_argument("--max-count", type=COUNT, default=10000, help="samples per shard at most (default 10000)")
    p.add_argument("--max-size", type=POSITIVE, default=3e9, help="bytes per shard at most (default 3e9)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=_cmd_shards)

    p = sub.add_parser("features", help="pooled 2048-d features (and FID taps) of images, to .npz or .safetensors")
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns; with --dataset wds: the "
                   "shards' folder; hf: a hub name, a save_to_disk folder or Parquet files")  # fmt: skip
    p.add_argument("--dataset", default="files", choices=["files", "wds", "hf"], help="what IMAGES are (default: "
                   "files); wds and hf also save the labels and class names")  # fmt: skip
    p.add_argument("--split", help="wds: the shard pattern, e.g. 'val-{000000..000063}.tar'; hf: the split "
                   "(default: validation)")  # fmt: skip
    p.add_argument("--image-column", default="image", help="hf: the image column (default: image)")
    p.add_argument("--label-column", default="label", help="hf: the label column (default: label)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--output", required=True, help="FILE.npz or FILE.safetensors (written atomically)")
    p.add_argument("--taps", help="also the FID taps, e.g. 64,192,768 (pooled maxpool1, maxpool2, Mixed_6e)")
    p.add_argument("--batch-size", type=COUNT, default=32, help="images per forward pass (default 32)")
    p.add_argument("--central-fraction", type=FRACTION, help="crop fraction (default: the one the weights come with)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="machine-readable summary instead of the summary line")
    _add_device_option(p)
    p.set_defaults(func=_cmd_features)

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
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds 0..N-1 per variant")
    p.add_argument("--dataset", choices=["fashion-mnist", "imagefolder", "wds", "hf"], help="the data's format "
                   "(default: the budget's: fashion-mnist, or imagefolder for paper)")  # fmt: skip
    p.add_argument("--data-dir", help="Fashion-MNIST folder (default: Debian's), or for paper ImageNet: train/ and "
                   "val/ class folders, the shards' folder (wds) or a dataset (hf)")  # fmt: skip
    p.add_argument("--train-split", help="wds: the training shards' pattern; hf: the split (default: train)")
    p.add_argument("--val-split", help="wds: the validation shards' pattern; hf: the split (default: validation)")
    p.add_argument("--image-column", help="hf: the image column (default: image)")
    p.add_argument("--label-column", help="hf: the label column (default: label)")
    p.add_argument("--out-dir", default="runs/reproduce", help="where the training runs (checkpoints) go; runs are "
                   "named by their settings, not their data: one folder per data set")  # fmt: skip
    p.add_argument("--records", help="where the run records go (default: OUT_DIR/records)")
    p.add_argument("--report", help="the report to (re)write (default: OUT_DIR/reproduction.md)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the records; run nothing")
    p.set_defaults(func=_cmd_reproduce)
    return parser


# Third-party warnings that tell a user nothing they can act on: a foreign pickle's protocol (loading says
# what is wrong with such a file), TorchScript's deprecation (asked for by --format torchscript; its help
# says so), more DataLoader workers than CPUs (what --workers asked for), a note from inside torch's compiler.
QUIET_WARNINGS = (
    (UserWarning, r"Detected pickle protocol"),
    (FutureWarning, r"`torch\.jit\.(save|load)` is deprecated"),
    (UserWarning, r"This DataLoader will create \d+ worker processes in total"),
    (UserWarning, r"To copy construct from a tensor"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    try:
        args.func(args)
    except (UserError, ValueError, OSError) as exc:  # OSError: a file that cannot be read or written
        print(f"inception-v3 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inception-v3 {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
