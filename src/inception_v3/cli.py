"""The `inception-v3` command line: one subcommand per job, each a library function with typed arguments whose
result this module formats; one clear line for bad input.

The library names its Python arguments in messages (`skip_bad_images=True`, `kid_subset_size`); `as_flags`
turns them into the running command's options (--skip-bad-images, --kid-subset-size). Library log lines
(`logging`, under `inception_v3`) are shown on stderr the same way; results go to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .errors import UserError
from .models.config import PRESETS

WEIGHTS_HELP = (
    "a name (`inception-v3 weights`), an http(s) URL, a checkpoint, a weights file or a save_pretrained folder"
)
SOURCE_HELP = "a folder, .zip, .npz sample batch, wds:DIR/PATTERN, hf:NAME[:SPLIT] or fashion-mnist:[DIR:]SPLIT"
DEVICE_HELP = "where the network runs: cpu, cuda, cuda:N or auto (default: auto, CUDA when there is one)"
IMAGES_HELP = f"image files, folders or glob patterns, or one of {SOURCE_HELP}"


# ----------------------------------------------------------------------------- the commands
def _cmd_models(args: argparse.Namespace) -> None:
    from .models.accounting import preset_table

    rows = preset_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<32}{'params':>13}{'input':>7}{'min':>5}  description")
    for r in rows:
        print(f"{r['name']:<32}{r['params']:>13,}{r['input']:>7}{r['min_input']:>5}  {r['description']}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from .models.accounting import format_summary, summarize
    from .models.inception import build_preset

    overrides = {k: getattr(args, k) for k in ("num_classes", "width_multiplier") if getattr(args, k) is not None}
    model = build_preset(args.preset, **overrides)
    resolution = args.resolution or model.config.receptive_field
    if resolution < model.min_size:
        raise UserError(
            f"resolution {resolution} is below this model's minimum input {model.min_size}; pass "
            f"`resolution={model.min_size}` or more"
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
    from .training.recipes import resume_config
    from .training.settings import TrainConfig

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    result = train(resume_config(args.recipe, args.resume, **overrides), args.resume, args.overwrite)
    if not result.finished:
        raise SystemExit(130)
    ema, raw = result.final["ema"]["top1"], result.final["raw"]["top1"]
    print(f"done: top-1 {ema:.4f} (averaged weights), {raw:.4f} (raw); report in {result.run_dir / 'report.md'}")


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduction.runner import reproduce

    names = ("dataset", "data_dir", "train_split", "val_split", "image_column", "label_column")
    report = _call(reproduce, args, data={k: getattr(args, k) for k in names})
    if report is None:
        raise SystemExit(130)
    print(f"report: {report}")


def _cmd_convert(args: argparse.Namespace) -> None:
    from .interop.pretrained import convert

    report = _call(convert, args)
    print(f"{args.src} -> {args.dst}: {report.summary()}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import format_result, run_evaluation

    result = _call(run_evaluation, args, data=_data(args), protocol=args.crops, show_progress=not args.json)
    print(json.dumps(result, indent=2) if args.json else format_result(result))


def _cmd_predict(args: argparse.Namespace) -> None:
    from .evaluation.predict import predict

    results, loaded = _call(predict, args, weights=[args.weights], images=_images(args), protocol=args.crops)
    _say_loaded(loaded)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["image"] + ": " + ", ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"]))


def _cmd_features(args: argparse.Namespace) -> None:
    from .evaluation.features import check_output, extract_features, write_features

    try:
        taps = [int(v) for v in (args.taps or "").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"invalid --taps {args.taps!r}: expected comma-separated integers such as 64,192,768") from None
    check_output(args.output, args.overwrite)
    feats = _call(extract_features, args, images=_images(args), taps=taps, show_progress=not args.json)
    out = write_features(feats, args.output, args.overwrite)
    info: dict[str, Any] = {
        "output": str(out),
        "images": len(feats.names),
        "weights": feats.weights,
        "arrays": {k: list(v.shape) for k, v in feats.arrays.items()},
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return
    _say_loaded([feats.weights])
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["arrays"].items())
    print(f"wrote {out}: {info['images']} images; {shapes}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .deploy.export import export_model
    from .interop.pretrained import load_pretrained

    model, report = load_pretrained(args.weights)
    _say_loaded([f"{args.weights}: {report.summary()}"])
    info = export_model(model, args.format, args.output, args.features, args.overwrite)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    line = f"wrote {info['output']} ({info['format']}, {info['bytes']:,} bytes, input {info['input']}, "
    line += f"output {info['output_name']})"
    if "onnx_max_abs_diff" in info:
        diff, relative = info["onnx_max_abs_diff"], info["onnx_relative_diff"]
        line += f"; ONNX vs PyTorch max abs diff {diff:.2e} ({relative:.1e} of the output scale)"
    print(line)


def _cmd_fidelity(args: argparse.Namespace) -> None:
    from .scoring.calculate import format_table, score

    settings = _settings(args)
    result = score(args.input1, args.input2, settings, show_progress=not args.json)
    if not result and int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, the first process reports
    if settings.save_stats:
        print(f"statistics of {args.input1} saved to {settings.save_stats}", file=sys.stderr)
    if result:
        print(json.dumps(result, indent=2) if args.json else format_table(result, settings.convention))


def _cmd_fid(args: argparse.Namespace) -> None:
    """pytorch-fid's command: `fidelity --fid --convention pytorch-fid` with its output."""
    from .scoring.calculate import score

    settings = _settings(args, fid=args.b is not None, convention="pytorch-fid")
    if args.b is None and not settings.save_stats:
        raise UserError("give two inputs (images or .npz statistics), or one with --save-stats")
    result = score(args.a, args.b, settings, show_progress=not args.json)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, the first process reports
    if args.b is None:
        print(f"statistics of {args.a} saved to {settings.save_stats}")
        return
    value = result["frechet_inception_distance"]
    print(json.dumps({"fid": value, "a": args.a, "b": args.b}) if args.json else f"FID {value:.6f}")


def _cmd_shards(args: argparse.Namespace) -> None:
    from .data.shard_writer import write_shards
    from .data.shards import index_shards

    if args.index:
        for spec in args.index:
            info = _call(index_shards, args, spec=spec)
            line = f"indexed {spec}: {info['samples']:,} samples in {info['shards']} shard(s), "
            print(json.dumps({"index": spec, **info}) if args.json else line + f"{info['bytes_per_sample']:.0f} B each")
        return
    if args.src is None or args.out is None:
        raise UserError("give SRC and OUT (or --index PATTERN to index existing shards)")
    info = _call(write_shards, args, data_dir=args.src)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(
        f"wrote {info['output']}: {info['classes']} classes; train {info['train']['samples']:,} samples in "
        f"{info['train']['shards']} shard(s), val {info['val']['samples']:,} in {info['val']['shards']}"
    )


def _cmd_weights(args: argparse.Namespace) -> None:
    from .interop.registry import weights_table

    rows = weights_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        p, metrics = r["preprocessing"], r["metrics_source"]
        if r["top1"]:
            metrics = f"top-1 {r['top1']:.2f} / top-5 {r['top5']:.2f} ({metrics})"
        check = f"md5 {r['md5']}" if r["md5"] else "sha256 from the hub, checked at download"
        if r["sha256"]:
            check = f"sha256 {r['sha256']}"
        norm = "[-1, 1]" if p["mean"] == [0.5] * 3 and p["std"] == [0.5] * 3 else f"mean {p['mean']} std {p['std']}"
        crop = f"shorter side to 299/{p['crop_fraction']:.3f}, center crop 299"
        if p["resize"] != "shorter":
            crop = f"central {p['crop_fraction']:.3f}, resize to 299x299"
        where = f"cached at {r['cached']} ({r['cached_size']:,} bytes)" if r["cached"] else "not downloaded yet"
        print(
            f"{r['name']}  (also: {', '.join(r['aliases'])})\n  {r['description']} [{r['source']}]\n"
            f"  {r['url']}\n  size {r['file_size'] or 'given at download'}, {check}; {where}\n  {metrics}\n"
            f"  input: {crop}, {p['interpolation']}, {norm}; classes: {r['classes']}"
            + ("" if r["classifier"] else ", no classifier (features)")
        )


# ----------------------------------------------------------------------------- shared by the commands
def _data(args: argparse.Namespace) -> str:
    """The one set of images of `--dataset --data-dir --split` (evaluate)."""
    from .data.formats import FORMATS, source_spec

    if args.dataset == "files":
        args.dataset = None  # (features' old spelling: the images as given)
    pattern = (args.data_dir or "").endswith(".tar")  # shards named with their pattern in --data-dir
    if args.split is None and not pattern and args.dataset in FORMATS and FORMATS[args.dataset].splits is None:
        raise UserError(
            f"--dataset {args.dataset} needs --split (for shards, a pattern such as 'val-{{000000..000063}}.tar')"
        )
    return source_spec(args.dataset, args.data_dir, args.split)


def _images(args: argparse.Namespace) -> Any:
    """What predict and features read: IMAGES (files, folders, globs, or one spec), or --dataset/--data-dir/--split.
    Old spelling: `--dataset wds|hf DIR --split S`, the one IMAGES argument being the data folder."""
    if args.data_dir is None and args.dataset is not None and args.dataset != "files" and len(args.images) == 1:
        args.data_dir, args.images = args.images[0], []
    if args.data_dir is not None or (args.dataset not in (None, "files") and not args.images):
        if args.images:
            raise UserError("give IMAGES or --data-dir, not both")
        return _data(args)
    if not args.images:
        raise UserError("give IMAGES (files, folders, globs or a spec) or --data-dir")
    return args.images


def _call(func: Callable[..., Any], args: argparse.Namespace, **given: Any) -> Any:
    """`func` called with the options named as its parameters, `columns` (--image-column, --label-column) and the
    `given` values (which take precedence)."""
    known = {**vars(args), **given}
    if "image_column" in known:
        known.setdefault("columns", (args.image_column, args.label_column))
    return func(**{name: known[name] for name in inspect.signature(func).parameters if name in known})


def _settings(args: argparse.Namespace, **fixed: Any) -> Any:
    """The scoring settings given on the command line (defaults for the rest), with `fixed` ones."""
    from .scoring.calculate import ScoringSettings

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ScoringSettings) if hasattr(args, f.name)}
    return ScoringSettings(**{k: v for k, v in {**given, **fixed}.items() if v is not None})


def _say_loaded(lines: list[str]) -> None:
    """What was loaded, on stderr (stdout stays the command's result, e.g. JSON)."""
    for line in lines:
        print(f"weights: {line}", file=sys.stderr)


# ----------------------------------------------------------------------------- options
def _number(kind: type, low: float, low_open: bool = False, high: float | None = None) -> Any:
    """An argparse type: a number of `kind` in [low, high] ((low, high] with `low_open`), else a one-line error."""
    bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
    expected = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value != value or (value <= low if low_open else value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


COUNT = _number(int, 1)  # images, classes, seeds, labels: at least one
POSITIVE = _number(float, 0, low_open=True)
FRACTION = _number(float, 0, low_open=True, high=1.0)  # a crop fraction in (0, 1]


def _setting_options(
    p: argparse.ArgumentParser, cls: type, only: Sequence[str] | None = None, defaults: dict[str, Any] | None = None
) -> None:
    """One option per field of a settings dataclass (`utils.settings`), typed, documented and limited by the
    field's metadata; an unset option stays None (the recipe's or the dataclass's value then holds)."""
    from .utils.settings import allowed, field_type

    hints = typing.get_type_hints(cls)
    for f in [f for f in dataclasses.fields(cls) if only is None or f.name in only]:
        meta, (kind, _) = f.metadata, field_type(hints[f.name])
        default = (defaults or {}).get(f.name, f.default)
        paper = f"; paper: {meta['paper']}" if meta["paper"] is not None else ""
        limits = "" if kind is bool or (kind is str and not meta["choices"]) else f"; {allowed(meta)}"
        text = f"{meta['help']} (default: {default}{paper}{limits})".replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        how = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind, "metavar": f.name.upper()}
        p.add_argument(flag, dest=f.name, default=None, help=text, **how)


def _data_options(p: argparse.ArgumentParser, split: bool = True, files: bool = False) -> None:
    """The options that name a set of images, the same on every command that reads one."""
    from .data.formats import FORMATS

    p.add_argument(
        "--dataset",
        choices=[*FORMATS, *(["files"] if files else [])],
        help="the format of --data-dir (default: from it: a folder, .zip, .npz, or a spec's prefix)",
    )
    p.add_argument("--data-dir", help=f"the data: {SOURCE_HELP}")
    if split:
        p.add_argument(
            "--split",
            help="a split of it: a sub-folder, a shard pattern such as "
            "'val-{000000..000063}.tar', a dataset's split (default: validation) or train|test",
        )
    p.add_argument("--image-column", default="image", help="hf: the image column (default: image)")
    p.add_argument("--label-column", default="label", help="hf: the label column (default: label)")


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _json_option(p: argparse.ArgumentParser, text: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=text)


def _command(sub: Any, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
    """The subcommand that `func` (`_cmd_NAME`) runs, named NAME."""
    p: argparse.ArgumentParser = sub.add_parser(func.__name__.removeprefix("_cmd_"), help=help)
    p.set_defaults(func=func)
    return p


def _parser_models(sub: Any) -> None:
    p = _command(sub, _cmd_models, "list the model presets (the paper's variants)")
    _json_option(p)
    p = _command(sub, _cmd_summary, "per-module shapes, parameters and multiply-adds")
    p.add_argument("--preset", default="inception_v3", help=f"model preset: {', '.join(PRESETS)}")
    p.add_argument("--resolution", type=COUNT, help="input side in pixels (default: the preset's own)")
    p.add_argument("--num-classes", type=COUNT, help="classes of the classifier")
    p.add_argument("--width-multiplier", type=POSITIVE, help="channel multiplier")
    _json_option(p)


def _parser_weights(sub: Any) -> None:
    p = _command(sub, _cmd_weights, "list the published weights known by name (source, checksum, accuracy, input)")
    _json_option(p)
    p = _command(sub, _cmd_convert, "convert weights from any ecosystem to config.json + model.safetensors")
    p.add_argument("src", help=WEIGHTS_HELP)
    p.add_argument("dst", help="output folder")
    p.add_argument("--preset", default="inception_v3", help="architecture of a bare state_dict")
    p.add_argument("--num-classes", type=COUNT, help="replace both classifiers with this many classes")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty DST")
    p = _command(sub, _cmd_export, "BN-folded inference graph: torchscript, onnx or exported-program")
    p.add_argument("weights", metavar="WEIGHTS", help=WEIGHTS_HELP)
    p.add_argument(
        "--format",
        required=True,
        choices=["torchscript", "onnx", "exported-program"],
        help="torchscript is deprecated by PyTorch (still served by torch.jit.load and LibTorch); "
        "exported-program is its successor",
    )
    p.add_argument("--output", required=True, help="file to write")
    p.add_argument("--features", action="store_true", help="output the pooled 2048-d features, not logits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _json_option(p)


def _parser_train(sub: Any) -> None:
    from .training.recipes import RECIPES
    from .training.settings import TrainConfig

    p = _command(sub, _cmd_recipes, "list the training recipes (the paper's and the CPU ones)")
    _json_option(p, "every recipe's full settings")
    p = _command(sub, _cmd_train, "train with the paper's method; writes runs/NAME")
    p.add_argument(
        "--recipe",
        default="fashion-mnist",
        help=f"named recipe: {', '.join(RECIPES)} (see `inception-v3 "
        "recipes`); its values replace the defaults below (default: fashion-mnist)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="yes",
        default="no",
        choices=["yes", "auto"],
        help="continue OUT_DIR/NAME from its newest readable checkpoint; `--resume auto` also starts the "
        "run when it has none (one command line for the first launch and every restart)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a finished or abandoned run in OUT_DIR/NAME")
    _setting_options(p, TrainConfig)
    p = _command(sub, _cmd_reproduce, "rerun the paper's experiments (Tables 2-5, Sections 3, 4, 7) over seeds")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help="the experiments (`inception-v3 reproduce`)")
    p.add_argument("--budget", default="cpu", help="smoke (a minute), cpu (minutes), gpu (one H100), paper (ImageNet)")
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds 0..N-1 per variant")
    _data_options(p, split=False)
    p.add_argument("--train-split", help="the training split (default: the format's: train)")
    p.add_argument("--val-split", help="the validation split (default: the format's: val, validation or test)")
    p.add_argument(
        "--out-dir",
        default="runs/reproduce",
        help="where the training runs (checkpoints) go; runs are "
        "named by their settings, not their data: one folder per data set",
    )
    p.add_argument("--records", help="where the run records go (default: OUT_DIR/records)")
    p.add_argument("--report", help="the report to (re)write (default: OUT_DIR/reproduction.md)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the records; run nothing")


def _parser_evaluate(sub: Any) -> None:
    p = _command(sub, _cmd_evaluate, "top-1/top-5, per-class accuracy and calibration under the paper's crops")
    p.add_argument("weights", nargs="+", metavar="WEIGHTS", help="weights (as below), or several for an ensemble")
    _data_options(p)
    p.add_argument("--data", dest="data_dir", help="the same as --data-dir")
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
    p.add_argument(
        "--calibration",
        help=f"int8: training images to calibrate on ({SOURCE_HELP}; Fashion-MNIST data: its training split)",
    )
    p.add_argument("--workers", type=_number(int, 0), default=2, help="decoding processes (default 2)")
    p.add_argument("--out", help="folder for metrics.json, confusion.png and reliability.png")
    _json_option(p)
    _device_option(p)


def _parser_predict(sub: Any) -> None:
    p = _command(sub, _cmd_predict, "top-k labels for images: files, folders, globs or any data set")
    p.add_argument("weights", metavar="WEIGHTS", help=WEIGHTS_HELP)
    p.add_argument("images", nargs="*", metavar="IMAGES", help=IMAGES_HELP)
    _data_options(p)
    p.add_argument("--top-k", type=COUNT, default=5, help="labels per image (default 5)")
    p.add_argument("--crops", default="single", choices=["single", "10", "144"])
    p.add_argument("--central-fraction", type=FRACTION, help="crop fraction (default: the one the weights come with)")
    _json_option(p)
    _device_option(p)


def _parser_features(sub: Any) -> None:
    p = _command(sub, _cmd_features, "pooled 2048-d features (and FID taps) of images, to .npz or .safetensors")
    p.add_argument("images", nargs="*", metavar="IMAGES", help=IMAGES_HELP)
    _data_options(p, files=True)
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--output", required=True, help="FILE.npz or FILE.safetensors (written atomically)")
    p.add_argument("--taps", help="also the FID taps, e.g. 64,192,768 (pooled maxpool1, maxpool2, Mixed_6e)")
    p.add_argument("--batch-size", type=COUNT, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=_number(int, 0), default=2, help="decoding processes (default 2)")
    p.add_argument("--central-fraction", type=FRACTION, help="crop fraction (default: the one the weights come with)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _json_option(p, "machine-readable summary instead of the summary line")
    _device_option(p)


def _parser_scoring(sub: Any) -> None:
    from .scoring.calculate import ScoringSettings

    p = _command(
        sub,
        _cmd_fidelity,
        "Inception Score, FID, KID and precision/recall of generated images, with "
        "torch-fidelity's, clean-fid's or pytorch-fid's numbers",
    )
    p.add_argument(
        "input1", metavar="INPUT1", help=f"generated images: {SOURCE_HELP}, or a .npz of statistics (FID only)"
    )
    p.add_argument(
        "input2",
        nargs="?",
        metavar="INPUT2",
        help="reference images (the same kinds); needed by --fid, --kid and --prc",
    )
    _setting_options(p, ScoringSettings)
    _json_option(p, "one flat JSON object with torch-fidelity's keys")
    p = _command(
        sub, _cmd_fid, "Frechet Inception Distance with pytorch-fid's numbers (fidelity --fid --convention pytorch-fid)"
    )
    p.add_argument("a", metavar="A", help=f"images ({SOURCE_HELP}) or .npz statistics")
    p.add_argument("b", nargs="?", metavar="B", help="the same kinds (omit with --save-stats)")
    _setting_options(
        p,
        ScoringSettings,
        ("weights", "dims", "batch_size", "workers", "device", "cache", "skip_bad_images", "save_stats"),
        {"batch_size": 50},
    )
    p.set_defaults(batch_size=50)
    _json_option(p)


def _parser_shards(sub: Any) -> None:
    p = _command(sub, _cmd_shards, "write WebDataset tar shards of a data set's training and validation splits")
    p.add_argument(
        "src",
        nargs="?",
        help="the data (as train's --data-dir): a folder with train/ and val/ (one "
        "sub-folder per class), hf:NAME_OR_PATH, a save_to_disk folder, fashion-mnist:, ...",
    )
    p.add_argument(
        "out",
        nargs="?",
        help="the folder for train-000000.tar ..., val-000000.tar ... and classes.txt "
        "(with --overwrite, the shards an earlier `shards` wrote there are replaced: no others)",
    )
    p.add_argument(
        "--index",
        action="append",
        metavar="PATTERN",
        help="instead: index existing shards "
        "(wds:DIR/PATTERN) in the cache, once for the runs that read them (repeatable)",
    )
    _data_options(p, split=False)
    p.add_argument("--train-split", help="the split written as train-*.tar (default: the format's: train)")
    p.add_argument("--val-split", help="the split written as val-*.tar (default: the format's: val, validation, test)")
    p.add_argument("--max-count", type=COUNT, default=10000, help="samples per shard at most (default 10000)")
    p.add_argument("--max-size", type=POSITIVE, default=3e9, help="bytes per shard at most (default 3e9)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    _json_option(p, "machine-readable summary")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where the help is (exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="inception-v3",
        description="Inception-v3 (Szegedy et al., 2016): models, accounting, "
        "training, evaluation and the scores of generative models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _parser_models(sub)
    _parser_weights(sub)
    _parser_train(sub)
    _parser_evaluate(sub)
    _parser_predict(sub)
    _parser_features(sub)
    _parser_scoring(sub)
    _parser_shards(sub)
    return parser


# ----------------------------------------------------------------------------- Python names -> flags
_NAMED = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`]*))?`")


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """`name` and `name=value` of the library's messages as the command's options: --name, --name value
    (`True`: the flag alone; a boolean option's `False`: --no-name); names the command has no option for stay."""
    # an option's first spelling (--data-dir, not its alias --data): the first action of a dest wins
    actions = {action.dest: action for action in reversed(parser._actions)}

    def flag(m: re.Match[str]) -> str:
        action, value = actions.get(m.group(1)), m.group(2)
        if action is None:
            return m.group(0)
        if not action.option_strings:  # a positional argument
            return str(action.metavar or action.dest.upper())
        option = action.option_strings[0]
        text = None if value is None else value.strip("'\"")
        if text is None or text == "True" or text == getattr(action, "const", None):
            return option
        if text == "False" and isinstance(action, argparse.BooleanOptionalAction):
            return "--no-" + option[2:]
        return f"{option} {text}"

    return _NAMED.sub(flag, message)


class _Lines(logging.Handler):
    """The library's log lines on stderr, in the command's terms."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(logging.INFO)
        self.parser = parser

    def emit(self, record: logging.LogRecord) -> None:
        print(as_flags(record.getMessage(), self.parser), file=sys.stderr, flush=True)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    logger = logging.getLogger("inception_v3")
    handler, level = _Lines(command), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        args.func(args)
    except (UserError, ValueError, OSError) as exc:  # OSError: a file that cannot be read or written
        print(f"inception-v3 {args.command}: error: {as_flags(str(exc), command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inception-v3 {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
