"""`inception-v3 reproduce`: the experiments of `experiments.py` as grids of ordinary training runs
(`training.loop.train`) and evaluations (`evaluation.protocols.run_evaluation`), at a budget, over seeds.

Every finished run leaves a small JSON record (config, seed, time, metrics, curves); the report
(`reproduction_report.py`) is rebuilt from those records alone. A run is identified by a hash of its
resolved training config, so the same run shared by two experiments (Inception-v3 with label
smoothing 0.1 is in table3, aux, factorization and label-smoothing) is trained once, and an
interrupted `reproduce` resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..models.accounting import count_macs
from ..models.config import InceptionConfig
from ..models.inception import Inception3
from ..training.settings import TrainConfig
from ..utils.io import atomic_write_text
from .experiments import BUDGETS, EXPERIMENTS, Experiment, record_path, variant_runs

log = logging.getLogger(__name__)


def main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_record(cfg: TrainConfig, final: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """What the report needs from a finished run (no checkpoints): config, metrics, curves, cost, machine."""
    saved = json.loads((run_dir / "config.json").read_text())
    model_cfg = InceptionConfig.from_dict(saved["model"])
    main_path = Inception3(model_cfg.replace(aux_logits=False)).eval()
    x = torch.zeros(1, model_cfg.in_chans, model_cfg.receptive_field, model_cfg.receptive_field)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [{k: r[k] for k in ("step", "epoch", "loss", "train_acc")} for r in metrics if r["kind"] == "step"]
    return {
        "kind": "train",
        "train": saved["train"],  # the settings that ran (amp "auto" resolved)
        "model": saved["model"],
        "seed": cfg.seed,
        "macs": count_macs(main_path, lambda: main_path(x)),
        "params": sum(p.numel() for p in main_path.parameters()),
        "final": {w: {k: v for k, v in final[w].items() if k != "confusion"} for w in ("ema", "raw")},
        "steps": final["steps"],
        "train_seconds": final["train_seconds"],
        "curve": steps,
        "epochs": [r for r in metrics if r["kind"] == "epoch"],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
    }


def run_experiment(name: str, budget: str, seeds: int, out_dir: Path, records: Path, data: dict[str, Any]) -> bool:
    """Run every missing run of one experiment; False if a run was interrupted (rerun to resume)."""
    from ..training.loop import train

    exp = EXPERIMENTS[name]
    if exp.crops:
        return run_crops(exp, budget, seeds, out_dir, records, data)
    for variant in exp.variants:
        for run_id, (cfg,) in variant_runs(exp, variant, budget, seeds, out_dir, data):
            path = record_path(records, budget, run_id)
            if path.exists():
                log.info(f"[{name}] {variant.name}, seed {cfg.seed}: done ({path})")
                continue
            log.info(f"[{name}] {variant.name}, seed {cfg.seed}: training {cfg.out_dir}/{cfg.name}")
            if not (result := train(cfg, resume="auto")).finished:
                return False
            if main_rank():
                write_json(path, train_record(cfg, result.final, Path(cfg.out_dir) / cfg.name))
    return True


def run_crops(exp: Experiment, budget: str, seeds: int, out_dir: Path, records: Path, data: dict[str, Any]) -> bool:
    """Evaluate the source variant's best checkpoints (trained first if missing) under each crop protocol."""
    from ..data.formats import default_splits, open_split
    from ..evaluation.evaluate import run_evaluation

    source_exp, source = next((e, v) for e in EXPERIMENTS.values() for v in e.variants if v.name == exp.source)
    needed = [i for i, _ in variant_runs(source_exp, source, budget, seeds, out_dir, data)]
    if not all(record_path(records, budget, i).exists() for i in needed):
        log.info(f"[{exp.name}] training the {exp.source} runs of {source_exp.name} first")
        if not run_experiment(source_exp.name, budget, seeds, out_dir, records, data):
            return False
    limit = BUDGETS[budget]["crop_images"]
    for variant in exp.variants:
        protocol = variant.overrides["protocol"]
        for run_id, group in variant_runs(exp, variant, budget, seeds, out_dir, data):
            ids = [c.name for c in group]
            path = record_path(records, budget, run_id)
            if path.exists():
                log.info(f"[{exp.name}] {variant.name} of {', '.join(ids)}: done ({path})")
                continue
            log.info(f"[{exp.name}] {variant.name} of {', '.join(ids)}")
            started = time.time()
            ckpts = [str(Path(c.out_dir) / c.name / "best.pt") for c in group]
            if missing := [p for p in ckpts if not Path(p).exists()]:
                raise UserError(
                    f"{missing[0]} is missing (its run record exists but the checkpoint was removed); "
                    f"delete {record_path(records, budget, Path(missing[0]).parent.name)} to retrain"
                )
            first = group[0]
            split = first.val_split or default_splits(first.dataset, first.data_dir)[1]
            val = open_split(first.dataset, first.data_dir, split, (first.image_column, first.label_column))
            result = run_evaluation(
                ckpts, val, protocol, limit=limit, central_fraction=first.eval_crop, show_progress=False
            )
            record = {
                "kind": "crops",
                "variant": variant.name,
                "protocol": protocol,
                "members": ids,
                "seed": first.seed if len(group) == 1 else None,
                "seconds": time.time() - started,
                "final": {"ema": {k: result[k] for k in ("n", "top1", "top5", "ece")}},
            }
            if main_rank():
                write_json(path, record)
    return True


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))  # (creating the folder)


def reproduce(
    experiments: list[str],
    budget: str = "cpu",
    seeds: int = 3,
    out_dir: str | Path = "runs/reproduce",
    records: str | Path | None = None,
    report: str | Path | None = None,
    data: dict[str, Any] | None = None,
    report_only: bool = False,
) -> Path | None:
    """Run the experiments' missing runs (their records in `records`, default OUT_DIR/records), then rebuild the
    report (default OUT_DIR/reproduction.md) and return its path; None if a run was interrupted (run the same
    again to resume). `report_only`: rebuild the report from the records, run nothing."""
    from .report import write_report

    out = Path(out_dir)
    records_dir = Path(records) if records else out / "records"
    report_path = Path(report) if report else out / "reproduction.md"
    data = data or {}
    if report_only:
        if not records_dir.is_dir():
            raise UserError(f"no run records in {records_dir}; run `inception-v3 reproduce EXPERIMENT` first")
        write_report(records_dir, report_path)
        return report_path
    if not experiments:
        raise UserError(f"name at least one experiment: {', '.join(EXPERIMENTS)}")
    if unknown := [e for e in experiments if e not in EXPERIMENTS]:
        raise UserError(f"unknown experiment {unknown[0]!r}; valid experiments: {', '.join(EXPERIMENTS)}")
    if budget not in BUDGETS:
        raise UserError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGETS)}")
    if seeds < 1:
        raise UserError(f"`seeds` must be at least 1, got {seeds}")
    if budget == "paper" and not data.get("data_dir"):
        raise UserError(
            "the paper budget trains on ImageNet: give `data_dir` (train/ and val/ class folders, shards "
            "with `dataset` wds, or a dataset with `dataset` hf)"
        )
    for name in experiments:
        if not run_experiment(name, budget, seeds, out, records_dir, data):
            log.info("interrupted; run the same command again to resume (finished runs are kept)")
            return None
    if main_rank():
        write_report(records_dir, report_path)
    return report_path
