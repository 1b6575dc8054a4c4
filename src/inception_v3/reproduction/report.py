"""The reproduction report (`docs/reproduction.md` + PNG figures), rebuilt from run records alone:
per experiment a table (the paper's number, ours as mean +- std over seeds, both as differences to
the experiment's first row), the training curves, and a verdict per claim."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..utils.figures import new_figure, save_figure
from ..utils.io import atomic_write_text
from .experiments import BUDGETS, EXPERIMENTS, Claim, Experiment, load_records, variant_runs

MAX_SEEDS = 20


def gather(exp: Experiment, budget: str, records: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """variant name -> its records (one per seed, or one for an ensemble)."""
    if exp.crops:
        crops = [r for r in records.values() if r["kind"] == "crops"]
        return {v.name: [r for r in crops if r["variant"] == v.name] for v in exp.variants}
    ids = {v.name: [i for i, _ in variant_runs(exp, v, budget, MAX_SEEDS)] for v in exp.variants}
    return {name: [records[i] for i in run_ids if i in records] for name, run_ids in ids.items()}


def top1s(recs: list[dict[str, Any]]) -> list[float]:
    """Top-1 (%) of each record's evaluated weights (the running average for training runs)."""
    return [100 * r["final"]["ema"]["top1"] for r in recs]


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def verdict(claim: Claim, rows: dict[str, list[dict[str, Any]]]) -> tuple[str, str]:
    """(our difference as text, the verdict) for one claim."""
    better, worse = top1s(rows[claim.better]), top1s(rows[claim.worse])
    if not better or not worse:
        return "-", "not run at this budget"
    (mb, sb), (mw, sw) = mean_std(better), mean_std(worse)
    diff = mb - mw
    spreads = [s for s in (sb, sw) if s is not None]
    if not spreads:
        return f"{diff:+.2f}", "not distinguishable at this budget (one seed: no spread to compare with)"
    spread = max(spreads)
    text = f"{diff:+.2f} (seed spread {spread:.2f})"
    if abs(diff) <= spread:
        return text, "not distinguishable at this budget (the spread over seeds is larger than the difference)"
    return text, "reproduced (same direction)" if diff > 0 else "not reproduced (opposite direction)"


def _fmt(value: float | None, spec: str = "+.2f") -> str:
    return "-" if value is None else format(value, spec)


def table(exp: Experiment, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    ref = exp.variants[0]
    ref_mean = mean_std(top1s(rows[ref.name]))[0] if rows[ref.name] else None
    lines = [
        "| variant | paper top-1 (ImageNet) | paper vs first row | ours top-1 (mean +- std, seeds) | "
        "ours vs first row | ECE | mult-adds | time per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in exp.variants:
        recs = rows[v.name]
        paper_delta = None if v.paper_top1 is None or ref.paper_top1 is None else v.paper_top1 - ref.paper_top1
        if recs:
            m, s = mean_std(top1s(recs))
            ours = f"{m:.2f} +- {_fmt(s, '.2f')} ({len(recs)})"
            delta = _fmt(None if ref_mean is None else m - ref_mean)
            ece = f"{statistics.fmean(r['final']['ema']['ece'] for r in recs):.4f}"
            macs = f"{recs[0]['macs'] / 1e6:.1f} M" if "macs" in recs[0] else "-"
            secs = statistics.fmean(r.get("train_seconds", r.get("seconds", 0.0)) for r in recs)
            when = f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.0f} s"
        else:
            ours, delta, ece, macs, when = "not run", "-", "-", "-", "-"
        paper = _fmt(v.paper_top1, ".1f")
        lines.append(f"| {v.name} | {paper} | {_fmt(paper_delta)} | {ours} | {delta} | {ece} | {macs} | {when} |")
    return lines


def _smooth(values: list[float], k: int = 5) -> list[float]:
    return [statistics.fmean(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


def plot_experiment(exp: Experiment, rows: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Training curves (mean over seeds) per variant, and top-1 per variant with its seed spread."""
    curves = not exp.crops
    fig, axes = new_figure(15 if curves else 6, 3.8, ncols=3 if curves else 1, squeeze=False)
    names = [v.name for v in exp.variants if rows[v.name]]
    means = [mean_std(top1s(rows[n])) for n in names]
    bar = axes[0][-1]
    bar.bar(range(len(names)), [m for m, _ in means], yerr=[s or 0 for _, s in means], capsize=4)
    bar.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    bar.set_ylim(min(m - (s or 0) for m, s in means) - 1.5, max(m + (s or 0) for m, s in means) + 0.5)
    bar.set(ylabel="test top-1 (%)", title="Top-1 (mean, error bar = std over seeds)")
    if curves:
        for name in names:
            runs = [r["curve"] for r in rows[name]]
            n = min(len(c) for c in runs)
            epoch = [runs[0][i]["epoch"] for i in range(n)]
            for ax, key in zip(axes[0][:2], ("loss", "train_acc"), strict=True):
                values = _smooth([statistics.fmean(c[i][key] for c in runs) for i in range(n)])
                ax.plot(epoch, values, marker="." if n < 10 else None, label=name)
        axes[0][0].set(xlabel="epoch", ylabel="training loss", title="Training loss (includes smoothing, aux)")
        axes[0][1].set(xlabel="epoch", ylabel="running train accuracy", title="Training accuracy (main head)")
        axes[0][1].legend(fontsize=8)
    fig.suptitle(exp.title, fontsize=10)
    save_figure(fig, path)


def budget_line(budget: str, records: dict[str, dict[str, Any]]) -> str:
    trains = [r for r in records.values() if r["kind"] == "train"]
    if not trains:
        return ""
    t, m = trains[0]["train"], trains[0]["machine"]
    hours = sum(r["train_seconds"] for r in trains) / 3600
    data = f"{t['train_subset']:,} training images" if t.get("train_subset") else "the whole training set"
    val = f"the first {t['val_subset']:,} test images (spread evenly)" if t.get("val_subset") else "the test set"
    return (
        f"Budget `{budget}`: {t['dataset']}, width x{t['width_multiplier']}, {t['epochs']} epoch(s) of {data}, "
        f"batch {t['batch_size']}, lr {t['lr']} ({t['optimizer']} unless the variant says otherwise), "
        f"amp {t['amp']}; top-1 of the running-average weights on {val}. {len(trains)} training runs, "
        f"{hours:.1f} h of training in all, on {m['cpus']} CPU(s) `{m['processor'] or m['platform']}`"
        f"{' + ' + m['cuda'] if m.get('cuda') else ''}, torch {m['torch']}."
    )


def write_report(records_dir: Path, report: Path) -> list[Path]:
    """Write `report` and its figures (in `<report stem>/figures/`); returns the figure paths."""
    data = load_records(records_dir)
    figures_dir = report.parent / report.stem / "figures"
    lines = [
        "# Reproducing the paper's experiments",
        "",
        "Generated from the run records in "
        f"`{records_dir}` by `inception-v3 reproduce --report-only --records {records_dir} --report {report}`; "
        "the runs themselves by `inception-v3 reproduce EXPERIMENT --budget BUDGET --seeds N` (see the README).",
        "",
        "The paper's numbers are ImageNet top-1 accuracies (`../shared/paper/facts.md`); ours are on another "
        "data set at a far smaller budget, so the absolute numbers are not comparable. What is compared is "
        "each claim's direction: the difference between two rows. A claim is *reproduced* when our difference "
        "has the paper's sign and is larger than the spread over seeds (the larger standard deviation of the "
        "two rows), *not reproduced* when it is larger with the opposite sign, and *not distinguishable at "
        "this budget* otherwise.",
        "",
    ]
    figures = []
    for budget in [b for b in BUDGETS if b in data]:
        records = data[budget]
        lines += [f"## Budget `{budget}`", "", budget_line(budget, records), ""]
        for exp in EXPERIMENTS.values():
            rows = gather(exp, budget, records)
            if not any(rows.values()):
                continue
            figure = figures_dir / f"{budget}-{exp.name}.png"
            plot_experiment(exp, rows, figure)
            figures.append(figure)
            lines += [f"### {exp.title} (`{exp.name}`)", "", *table(exp, rows), ""]
            if exp.notes:
                lines += [exp.notes, ""]
            if exp.crops:
                n = next(r["final"]["ema"]["n"] for recs in rows.values() for r in recs)
                lines += [f"Here: the first {n:,} Fashion-MNIST test images.", ""]
            for claim in exp.claims:
                ours, result = verdict(claim, rows)
                lines.append(f"- {claim.text}: paper {_fmt(claim.paper_delta)} points, ours {ours} -> **{result}**")
            lines += ["", f"![{exp.name}]({figure.relative_to(report.parent)})", ""]
    if not figures:
        lines += ["No run records yet.", ""]
    atomic_write_text(report, "\n".join(lines))
    return figures
