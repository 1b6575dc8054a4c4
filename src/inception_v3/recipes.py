"""Training settings (`TrainConfig`) and the named recipes: the paper's, its Table 3 ladder, and
small CPU recipes for Fashion-MNIST. Every field can be overridden on the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as config.json in the run directory."""

    # model (None keeps the preset's value)
    preset: str = "inception_v3"
    receptive_field: int | None = None  # 299, 151 or 79: the same preset at another Table 2 input size
    width_multiplier: float | None = None
    min_depth: int | None = None
    drop_rate: float | None = None
    bn_momentum: float | None = None
    # data
    dataset: str = "imagefolder"
    data_dir: str | None = None
    gray: str = "in_chans"  # gray data: "in_chans" (in_chans=1) or "rgb" (replicate to 3 channels)
    crop_area_min: float = 0.05
    color_distortion: float = 0.5
    eval_crop: float = 0.875
    train_subset: int | None = None
    val_subset: int | None = None
    workers: int = 2
    skip_bad_images: bool = False
    # optimization (Sections 7-8)
    epochs: float = 100.0
    batch_size: int = 32  # per replica
    optimizer: str = "rmsprop"
    lr: float = 0.045
    scale_lr: bool = False  # lr x global_batch / 1600
    warmup_epochs: float = 0.0
    lr_decay: float = 0.94
    lr_decay_epochs: float = 2.0
    momentum: float = 0.9
    rmsprop_decay: float = 0.9
    rmsprop_eps: float = 1.0
    weight_decay: float = 4e-5
    decay_norm_and_bias: bool = False
    clip_grad_norm: float = 2.0
    label_smoothing: float = 0.1
    aux_weight: float = 0.4
    ema_decay: float = 0.9999
    ema_warmup: bool = False
    precise_bn_images: int = 1024  # training images that recompute BN statistics before each validation; 0: off
    # system
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    seed: int = 0
    deterministic: bool = False
    # run bookkeeping
    out_dir: str = "runs"
    name: str = "run"
    checkpoint_every: int = 1000  # optimizer steps; 0 = only at epoch ends
    keep_last: int = 3
    on_nonfinite: str = "stop"  # "stop" or "skip"

    def __post_init__(self) -> None:
        choices = {"dataset": ("fashion-mnist", "imagefolder"), "gray": ("in_chans", "rgb"),
                   "optimizer": ("rmsprop", "sgd"), "device": ("auto", "cpu", "cuda"),
                   "amp": ("none", "bf16", "fp16"), "on_nonfinite": ("stop", "skip")}  # fmt: skip
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"invalid {name} {getattr(self, name)!r}; valid values: {', '.join(valid)}")
        positive = ("epochs", "batch_size", "lr", "lr_decay", "lr_decay_epochs")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("label_smoothing and ema_decay must be in [0, 1)")
        if self.precise_bn_images < 0:
            raise ValueError(f"precise_bn_images must be >= 0, got {self.precise_bn_images}")
        if not 0 < self.crop_area_min <= 1:
            raise ValueError(f"crop_area_min must be in (0, 1], got {self.crop_area_min}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PAPER = {"preset": "inception_v3", "epochs": 100.0, "batch_size": 32, "optimizer": "rmsprop", "lr": 0.045}
_LADDER = {"epochs": 100.0, "batch_size": 32, "lr": 0.045}

# 28x28 images upsampled to the 79x79 receptive field; bf16 and channels_last are what make a
# CPU fast enough; the crop is milder than ImageNet's since the garments fill the frame.
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
    "amp": "bf16",
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
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}")
    return TrainConfig(**{**RECIPES[recipe][1], **given})
