"""The named training recipes: the paper's, its Table 3 ladder, and small CPU recipes for
Fashion-MNIST. Each is a set of `TrainConfig` values; every one can be overridden."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .settings import TrainConfig

PAPER = {"preset": "inception_v3", "epochs": 100.0, "batch_size": 32, "optimizer": "rmsprop", "lr": 0.045}
_LADDER = {"epochs": 100.0, "batch_size": 32, "lr": 0.045}
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

# 28x28 images upsampled to the 79x79 receptive field; bf16 (where the CPU has it natively) and channels_last
# make a CPU fast enough; the crop is milder than ImageNet's since the garments fill the frame.
_FASHION_MNIST = {
    "preset": "inception_v3_79",
    "dataset": "fashion-mnist",
    "width_multiplier": 0.125,
    "min_depth": 8,
    "batch_size": 32,
    "lr": 0.05,
    "crop_area_min": 0.85,
    "color_distortion": 0.0,
    "eval_crop": 1.0,
    "bn_momentum": 0.1,
    "ema_decay": 0.998,
    "ema_warmup": True,
    "amp": "auto",
    "channels_last": True,
    "workers": 0,
}

RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("The paper's Inception-v3 recipe: RMSProp-TF, lr 0.045 x 0.94 every 2 epochs, clip 2.0, "
              "label smoothing 0.1, aux 0.4, running average; 100 epochs, batch 32 per replica (x 50)", PAPER),
    "v2": ("Table 3: Inception-v2, SGD with momentum, no label smoothing",
           {**_LADDER, "preset": "inception_v2", "optimizer": "sgd", "label_smoothing": 0.0}),
    "v2+rmsprop": ("Table 3: + RMSProp", {**_LADDER, "preset": "inception_v2", "label_smoothing": 0.0}),
    "v2+rmsprop+ls": ("Table 3: + label smoothing", {**_LADDER, "preset": "inception_v2"}),
    "v2+rmsprop+ls+f7x7": ("Table 3: + factorized 7x7 stem", {**_LADDER, "preset": "inception_v2_factorized_7x7"}),
    "v3": ("Table 3: + BN-auxiliary (= Inception-v3, the paper recipe)", PAPER),
    "fashion-mnist": (
        "Fashion-MNIST on a CPU: the paper's method on a width-reduced 79x79 Inception-v3, 3 epochs",
        {**_FASHION_MNIST, "epochs": 3.0, "lr_decay_epochs": 0.25, "lr_decay": 0.85, "checkpoint_every": 500,
         "name": "fashion-mnist"},
    ),
    "finetune": (
        "Transfer learning from --init-from WEIGHTS: new classifiers for the data's classes, the pretrained "
        "layers at a tenth of the learning rate, SGD with momentum, a short schedule (5 epochs)",
        {"dataset": "imagefolder", "epochs": 5.0, "batch_size": 32, "optimizer": "sgd", "lr": 0.1,
         "pretrained_lr_scale": 0.1, "lr_decay": 0.5, "lr_decay_epochs": 2.0, "weight_decay": 4e-5,
         "crop_area_min": 0.25, "color_distortion": 0.25, "ema_decay": 0.998, "ema_warmup": True,
         "checkpoint_every": 500, "name": "finetune"},
    ),
    "demo": (
        "`make demo`: the fashion-mnist recipe cut to fit 10 minutes on a 2-core CPU (0.55 epochs)",
        {**_FASHION_MNIST, "epochs": 0.55, "lr_decay_epochs": 0.08, "lr_decay": 0.8, "checkpoint_every": 200,
         "name": "demo"},
    ),
}  # fmt: skip


def get_recipe(recipe: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a named recipe with field overrides (None values are ignored)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(RECIPES)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if unknown := sorted(set(given) - _FIELDS):
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}")
    return TrainConfig(**{**RECIPES[recipe][1], **given})


def resume_config(recipe: str, resume: str = "no", **overrides: Any) -> TrainConfig:
    """The settings of a launch: the recipe with `overrides`; when resuming (`resume` "yes" or "auto"), the run's
    own saved settings (config.json) with the overrides given now on top."""
    cfg = get_recipe(recipe, **overrides)
    if resume == "no":
        return cfg
    try:
        saved = json.loads((Path(cfg.out_dir) / cfg.name / "config.json").read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return cfg
    if not isinstance(saved, dict):
        return cfg
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(**{**{k: v for k, v in saved.items() if k in _FIELDS}, **given})
