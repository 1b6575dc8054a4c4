"""The paper's experiments as data: each a list of variants (training-config overrides on top of a
compute budget) with the paper's numbers and claims; a run's identity is a hash of its config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.recipes import PAPER, get_recipe
from ..training.settings import TrainConfig

V3 = {"preset": "inception_v3"}
# Settings that do not change a run's result, left out of its identity.
# A run's id covers its training settings, not its data's location or format (the same images train to the
# same weights from a folder, shards or an HF dataset; the report finds records by these ids alone): one
# --out-dir per data set.
UNHASHED = (
    *("out_dir", "name", "workers", "device", "checkpoint_every", "keep_last"),  # where and how it runs
    *("dataset", "data_dir", "train_split", "val_split", "image_column", "label_column"),  # its data's source
)


@dataclass(frozen=True)
class Variant:
    """One row of an experiment: training-config overrides on top of the budget, and the paper's number."""

    name: str
    overrides: dict[str, Any]
    paper_top1: float | None = None  # ImageNet top-1 accuracy (%) from facts.md, None where the paper has none


@dataclass(frozen=True)
class Claim:
    """`better` should beat `worse` by `paper_delta` top-1 points (None: the paper states no number)."""

    text: str
    better: str
    worse: str
    paper_delta: float | None


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    variants: list[Variant]
    claims: list[Claim]
    crops: bool = False  # evaluate the `source` experiment's checkpoints under crop protocols instead of training
    notes: str = ""
    source: str = ""  # crops: the variant whose checkpoints are evaluated


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("table2", "Table 2: receptive field 299 / 151 / 79 at equal compute", [
        Variant("299", {**V3, "receptive_field": 299}, 76.6),
        Variant("151", {**V3, "receptive_field": 151}, 76.4),
        Variant("79", {**V3, "receptive_field": 79}, 75.2),
    ], [
        Claim("151x151 input is almost as good as 299x299 at the same compute", "299", "151", 0.2),
        Claim("79x79 input loses only a little at the same compute", "299", "79", 1.4),
    ]),
    Experiment("table3", "Table 3: the cumulative ladder from Inception-v2 to Inception-v3", [
        Variant("Inception-v2", {"preset": "inception_v2", "optimizer": "sgd", "label_smoothing": 0.0}, 76.6),
        Variant("+ RMSProp", {"preset": "inception_v2", "label_smoothing": 0.0}, 76.9),
        Variant("+ Label Smoothing", {"preset": "inception_v2"}, 77.2),
        Variant("+ Factorized 7x7", {"preset": "inception_v2_factorized_7x7"}, 78.4),
        Variant("+ BN-auxiliary (v3)", V3, 78.8),
    ], [
        Claim("RMSProp beats SGD with momentum", "+ RMSProp", "Inception-v2", 0.3),
        Claim("label smoothing helps", "+ Label Smoothing", "+ RMSProp", 0.3),
        Claim("factorizing the first 7x7 conv into 3x3 convs helps", "+ Factorized 7x7", "+ Label Smoothing", 1.2),
        Claim("batch-normalizing the auxiliary head helps", "+ BN-auxiliary (v3)", "+ Factorized 7x7", 0.4),
        Claim("the whole ladder: Inception-v3 beats Inception-v2", "+ BN-auxiliary (v3)", "Inception-v2", 2.2),
    ]),
    Experiment("factorization", "Section 3.1: ReLU vs linear first layer in factorized convolutions", [
        Variant("ReLU + ReLU", V3, 77.2),
        Variant("linear + ReLU", {"preset": "inception_v3_linear_factorized"}, 76.2),
    ], [Claim("a ReLU after the first layer of each factorized pair beats a linear one", "ReLU + ReLU",
              "linear + ReLU", 1.0)]),
    Experiment("aux", "Section 4: with vs without the auxiliary head", [
        Variant("with aux head", V3),
        Variant("without aux head", {"preset": "inception_v3_no_aux"}),
    ], [Claim("the auxiliary head helps (as a regularizer, near the end of training)", "with aux head",
              "without aux head", None)],
       notes="The paper gives no number; it says the curves match until late in training, where the run "
             "with the head pulls ahead. The curves figure overlays both."),
    Experiment("label-smoothing", "Section 7: label smoothing eps 0 / 0.1 / 0.2, accuracy and calibration", [
        Variant("eps 0", {**V3, "label_smoothing": 0.0}, 76.9),  # Table 3's rows without / with smoothing
        Variant("eps 0.1", {**V3, "label_smoothing": 0.1}, 77.2),
        Variant("eps 0.2", {**V3, "label_smoothing": 0.2}),
    ], [
        Claim("label smoothing 0.1 helps top-1 (Table 3: +0.3 points; Section 7: about +0.2)", "eps 0.1", "eps 0",
              0.3),
        Claim("label smoothing 0.2 vs none (not in the paper)", "eps 0.2", "eps 0", None),
    ]),
    Experiment("crops", "Tables 4-5: single vs 10 vs 144 crops and an ensemble, on the Inception-v3 runs", [
        Variant("single crop", {"protocol": "single"}, 78.8),
        Variant("10 crops", {"protocol": "10"}),
        Variant("144 crops", {"protocol": "144"}, 81.23),
        Variant("ensemble, 144 crops", {"protocol": "144", "ensemble": True}, 82.7),
    ], [
        Claim("10 crops beat one (the paper's 12 crops: +1.73 points)", "10 crops", "single crop", None),
        Claim("144 crops beat one", "144 crops", "single crop", 2.43),
        Claim("an ensemble beats its members (144 crops each)", "ensemble, 144 crops", "144 crops", 1.47),
    ], crops=True, source="+ BN-auxiliary (v3)",
       notes="Evaluated on the first test images only (the budget's `crop_images`: 144 crops cost 144 forward "
             "passes per image); the ensemble is all seeds' Inception-v3 runs (the paper's has 4 models)."),
]}  # fmt: skip

# Shared by the budgets (on top of their recipe): how often checkpoints are written and how many are kept.
_FM = {"checkpoint_every": 100, "keep_last": 1}
BUDGETS: dict[str, dict[str, Any]] = {
    # Width 1/8 at 79x79, one epoch of 8,000 training images: ~2 minutes per run on 2 cores.
    "cpu": {"recipe": "fashion-mnist", "crop_images": 100, "train": {
        **_FM, "receptive_field": 79, "width_multiplier": 0.125, "min_depth": 8, "epochs": 1.0,
        "train_subset": 8000, "val_subset": 5000, "lr_decay_epochs": 0.1, "lr_decay": 0.85}},
    # Checks the whole pipeline in about a minute per experiment; its numbers mean nothing.
    "smoke": {"recipe": "fashion-mnist", "crop_images": 8, "train": {
        **_FM, "receptive_field": 79, "width_multiplier": 0.0625, "min_depth": 4, "epochs": 1.0,
        "train_subset": 192, "val_subset": 64, "checkpoint_every": 2, "precise_bn_images": 64}},
    # Full width on one H100: 5 epochs of the whole set at batch 128, bf16 + channels_last. Sized from
    # 32 GFLOP per training image at 79x79 and ~30% of the H100's bf16 peak: about 1.5 minutes a run
    # (estimated: no GPU has run it yet).
    "gpu": {"recipe": "fashion-mnist", "crop_images": 10000, "train": {
        **_FM, "checkpoint_every": 1000, "receptive_field": 79, "width_multiplier": 1.0, "min_depth": 16,
        "epochs": 5.0, "batch_size": 128, "lr": 0.1, "lr_decay_epochs": 0.5, "lr_decay": 0.8, "workers": 8,
        "ema_decay": 0.999, "device": "cuda"}},
    # The paper's ImageNet settings: run under torchrun on 50 replicas of batch 32 with --data-dir.
    "paper": {"recipe": "paper", "crop_images": None, "train": {
        **PAPER, "receptive_field": 299, "dataset": "imagefolder", "checkpoint_every": 5000, "keep_last": 3}},
}  # fmt: skip


def run_config(
    budget: str, overrides: dict[str, Any], seed: int, out_dir: Path, data: dict[str, Any] | None = None
) -> TrainConfig:
    """The full training config of one run: recipe <- budget <- variant <- seed, with the data options
    given (`dataset`, `data_dir`, splits, columns); its name is its hash."""
    spec = BUDGETS[budget]
    settings = {**spec["train"], **overrides, "seed": seed, **{k: v for k, v in (data or {}).items() if v is not None}}
    cfg = get_recipe(spec["recipe"], **settings)
    identity = {k: v for k, v in cfg.to_dict().items() if k not in UNHASHED}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return dataclasses.replace(cfg, out_dir=str(out_dir / budget), name=f"{digest}-seed{seed}")


def variant_runs(
    exp: Experiment,
    variant: Variant,
    budget: str,
    seeds: int,
    out_dir: Path = Path("runs"),
    data: dict[str, Any] | None = None,
) -> list[tuple[str, list[TrainConfig]]]:
    """(record id, the training runs it covers) for each of `seeds` seeds (one id for an ensemble)."""
    source = next(v for e in EXPERIMENTS.values() for v in e.variants if v.name == exp.source) if exp.crops else variant
    cfgs = [run_config(budget, source.overrides, s, out_dir, data) for s in range(seeds)]
    if not exp.crops:
        return [(c.name, [c]) for c in cfgs]
    ensemble = variant.overrides.get("ensemble", False)
    groups = [cfgs] if ensemble else [[c] for c in cfgs]
    prefix = f"crops-{variant.overrides['protocol']}{'-ensemble' if ensemble else ''}-"
    return [(prefix + hashlib.sha256("+".join(c.name for c in g).encode()).hexdigest()[:10], g) for g in groups]


def record_path(records: Path, budget: str, run_id: str) -> Path:
    return records / budget / f"{run_id}.json"


def load_records(records: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """budget -> run id -> record, for every record under `records`."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(records.glob("*/*.json")):
        out.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return out
