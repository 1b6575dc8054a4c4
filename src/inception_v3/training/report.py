"""The run report: report.md with the final numbers and config, and PNG plots of the curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..evaluation.plots import plot_confusion
from ..utils.figures import new_figure, save_figure
from ..utils.io import atomic_write_text


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_curves(records: list[dict[str, Any]], plots: Path) -> list[str]:
    """loss.png, accuracy.png and lr.png from the step and epoch records."""
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    if not steps:
        return []
    curves = {  # file and y label -> (keys of the train, val and averaged-val values, their labels, title)
        "loss": (
            ("loss", "val_loss", "ema_loss"),
            ("train (per step)", "val (raw)", "val (averaged)"),
            "Loss (train includes label smoothing and aux)",
        ),
        "accuracy": (
            ("train_acc", "val_top1", "ema_top1"),
            ("train (running, per epoch)", "val top-1 (raw)", "val top-1 (averaged)"),
            "Accuracy",
        ),
    }
    for name, (keys, labels, title) in curves.items():  # a per-step train curve, per-epoch val points
        fig, ax = new_figure(6, 3.5)
        ax.plot([r["epoch"] for r in steps], [r[keys[0]] for r in steps], lw=0.8, label=labels[0])
        for key, label, marker in zip(keys[1:], labels[1:], ("o-", "s-"), strict=True):
            ax.plot([r["epoch"] for r in epochs], [r[key] for r in epochs], marker, label=label)
        ax.set(xlabel="epoch", ylabel=name, title=title)
        ax.legend()
        save_figure(fig, plots / f"{name}.png")
    fig, ax = new_figure(6, 3.5)
    ax.plot([r["epoch"] for r in steps], [r["lr"] for r in steps])
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    save_figure(fig, plots / "lr.png")
    return ["loss.png", "lr.png", "accuracy.png"]


def _started_from(init: dict[str, Any] | None) -> list[str]:
    """The report's line about the weights a fine-tuning run started from (none from scratch)."""
    if not init:
        return ["Trained from scratch (the recipe's initialization).", ""]
    heads = ", ".join(h.rstrip(".") for h in init["new_heads"]) or "none (same classes)"
    return [f"Started from `{init['weights']}` ({init['file']}): {init['loaded']}. New classifiers: {heads}.", ""]


def _resumed(resumes: int) -> str:
    times = f"{resumes} time{'s' if resumes > 1 else ''}"
    return f", resumed {times} from its checkpoints (time lost to the interruptions not counted)" if resumes else ""


def _json_block(data: dict[str, Any]) -> list[str]:
    return ["```json", json.dumps(data, indent=2), "```", ""]


def write_report(run_dir: Path) -> Path:
    """Regenerate report.md and plots/*.png from config.json, metrics.jsonl and final.json."""
    config = json.loads((run_dir / "config.json").read_text())
    final = json.loads((run_dir / "final.json").read_text())
    plots = run_dir / "plots"
    names = plot_curves(read_metrics(run_dir), plots)
    train, classes, ema, raw = config["train"], config["classes"], final["ema"], final["raw"]
    if "confusion" in ema:
        plot_confusion(ema["confusion"], classes, plots / "confusion.png", "Confusion matrix (averaged weights)")
        names.append("confusion.png")
    lines = [
        f"# Training report: {train['name']}",
        "",
        f"Model `{train['preset']}` on `{train['dataset']}`, {final['steps']:,} steps of global batch "
        f"{config['global_batch']} ({final['steps'] / config['steps_per_epoch']:.2f} epochs) in "
        f"{final['train_seconds'] / 60:.1f} min on {config['world_size']} process(es)"
        f"{_resumed(final.get('resumes', 0))}.",
        "",
        *_started_from(config.get("init_from")),
        "| weights | top-1 | top-5 | loss | images |",
        "|---|---|---|---|---|",
        f"| running average (default) | {ema['top1']:.2%} | {ema['top5']:.2%} | {ema['loss']:.4f} | {ema['n']:,} |",
        f"| raw | {raw['top1']:.2%} | {raw['top5']:.2%} | {raw['loss']:.4f} | {raw['n']:,} |",
        "",
    ]
    if final["skipped_bad_images"] or final["skipped_nonfinite_steps"]:
        lines += [
            f"Skipped: {final['skipped_bad_images']} unreadable images, "
            f"{final['skipped_nonfinite_steps']} steps with a non-finite loss.",
            "",
        ]
    lines += [f"![{n}](plots/{n})" for n in names]
    if "confusion.png" in names and classes:
        per_class = [row[i] / max(sum(row), 1) for i, row in enumerate(ema["confusion"])]
        lines += ["", "| class | accuracy (averaged weights) |", "|---|---|"]
        lines += [f"| {c} | {a:.2%} |" for c, a in zip(classes, per_class, strict=True)]
    lines += ["", "## Configuration", "", *_json_block(train), "Model config:", "", *_json_block(config["model"])]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
