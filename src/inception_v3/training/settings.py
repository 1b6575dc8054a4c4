"""`TrainConfig`: every setting a training run depends on, each with its help line, the paper's value
where it has one, and the values it accepts, checked in one place (`TrainConfig.validate`).

The command line builds one `train` option per field from this metadata (type, choices, help), and a
run saves the resolved config as config.json and in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models.config import PRESETS, RECEPTIVE_FIELDS
from ..models.inception import TRUNK
from ..utils.precision import AMP_MODES

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def setting(default: Any, help: str, *, choices: tuple[Any, ...] | None = None, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False,
            paper: Any = None, name_like: bool = False) -> Any:  # fmt: skip
    """A field with its documentation and allowed values: `choices`, or a range [low, high] (open ends
    with low_open/high_open); `name_like` asks for a plain file name."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "paper": paper, "name_like": name_like}  # fmt: skip
    return field(default=default, metadata=meta)


def allowed(meta: Mapping[str, Any]) -> str:
    """What a field accepts, in words (for messages and help)."""
    if meta["choices"]:
        return "one of " + ", ".join(map(str, meta["choices"]))
    parts = []
    if meta["low"] is not None:
        parts.append(f"{'>' if meta['low_open'] else '>='} {meta['low']:g}")
    if meta["high"] is not None:
        parts.append(f"{'<' if meta['high_open'] else '<='} {meta['high']:g}")
    if meta["name_like"]:
        parts.append("a plain folder name (letters, digits, . _ + -)")
    return " and ".join(parts) or "any value"


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as config.json in the run directory."""

    # model (None keeps the preset's value)
    preset: str = setting("inception_v3", "model preset (`inception-v3 models`)", choices=tuple(PRESETS))
    receptive_field: int | None = setting(
        None, "Table 2 input size of the preset: 299, 151 or 79", choices=RECEPTIVE_FIELDS, paper=299
    )
    width_multiplier: float | None = setting(
        None, "channel multiplier (TF-slim depth_multiplier)", low=0, low_open=True, high=8, paper=1.0
    )
    min_depth: int | None = setting(None, "fewest channels of any layer after width scaling", low=1, paper=16)
    drop_rate: float | None = setting(None, "dropout before the classifier", low=0, high=1, high_open=True, paper=0.2)
    bn_momentum: float | None = setting(
        None, "batch-norm running-average momentum (PyTorch convention)", low=0, high=1, low_open=True, paper=0.0003
    )
    # data
    dataset: str = setting(
        "imagefolder",
        "fashion-mnist (Debian's files), imagefolder (DATA_DIR/train, /val), wds (WebDataset tar shards in "
        "DATA_DIR) or hf (a Hugging Face dataset: DATA_DIR is a hub name, a save_to_disk folder or Parquet files)",
        choices=("fashion-mnist", "imagefolder", "wds", "hf"),
    )
    data_dir: str | None = setting(None, "data folder (default for fashion-mnist: Debian's); hf: the dataset")
    train_split: str | None = setting(
        None, "wds: the training shards, e.g. 'train-{000000..001023}.tar'; hf: the split (default: train)"
    )
    val_split: str | None = setting(
        None, "wds: the validation shards, e.g. 'val-{000000..000063}.tar'; hf: the split (default: validation)"
    )
    image_column: str = setting("image", "hf: the column holding the images")
    label_column: str = setting("label", "hf: the column holding the labels")
    classes: str | None = setting(None, "train on these classes only: comma-separated names or indices")
    gray: str = setting(
        "in_chans",
        "gray images as one input channel (in_chans) or replicated to RGB (rgb)",
        choices=("in_chans", "rgb"),
    )
    crop_area_min: float = setting(
        0.05, "smallest area of the distorted crop", low=0, low_open=True, high=1, paper=0.05
    )
    color_distortion: float = setting(0.5, "color distortion strength (0: off)", low=0, high=1, paper=0.5)
    eval_crop: float = setting(0.875, "central crop fraction for evaluation", low=0, low_open=True, high=1, paper=0.875)
    train_subset: int | None = setting(None, "train on this many images, spread over the set", low=1)
    val_subset: int | None = setting(None, "validate on this many images, spread over the set", low=1)
    workers: int = setting(2, "data-loading worker processes (0: in the main process)", low=0, high=256)
    skip_bad_images: bool = setting(False, "skip and count unreadable images instead of stopping")
    # optimization (Sections 7-8)
    epochs: float = setting(100.0, "training length in epochs (fractions allowed)", low=0, low_open=True, paper=100)
    batch_size: int = setting(32, "images per step per replica", low=1, high=65536, paper=32)
    optimizer: str = setting(
        "rmsprop", "rmsprop (TensorFlow's) or sgd (momentum)", choices=("rmsprop", "sgd"), paper="rmsprop"
    )
    lr: float = setting(0.045, "learning rate", low=0, low_open=True, paper=0.045)
    scale_lr: bool = setting(False, "scale lr by global batch / 1600 (the paper's 50 x 32)")
    warmup_epochs: float = setting(0.0, "linear learning-rate warmup", low=0)
    lr_decay: float = setting(0.94, "learning-rate decay factor", low=0, low_open=True, high=1, paper=0.94)
    lr_decay_epochs: float = setting(2.0, "epochs between decays", low=0, low_open=True, paper=2)
    momentum: float = setting(0.9, "momentum of RMSProp or SGD", low=0, high=1, high_open=True, paper=0.9)
    rmsprop_decay: float = setting(
        0.9, "RMSProp decay of the squared-gradient average", low=0, high=1, high_open=True, paper=0.9
    )
    rmsprop_eps: float = setting(
        1.0, "RMSProp epsilon (inside the square root, as in TF)", low=0, low_open=True, paper=1.0
    )
    weight_decay: float = setting(4e-5, "L2 weight decay", low=0, paper=4e-5)
    decay_norm_and_bias: bool = setting(False, "apply weight decay to batch-norm parameters and biases too")
    clip_grad_norm: float = setting(2.0, "gradient clipping threshold (global norm)", low=0, low_open=True, paper=2.0)
    label_smoothing: float = setting(0.1, "label smoothing epsilon", low=0, high=1, high_open=True, paper=0.1)
    aux_weight: float = setting(0.4, "weight of the aux head's loss", low=0, paper=0.4)
    ema_decay: float = setting(
        0.9999, "decay of the running average of the weights", low=0, high=1, high_open=True, paper=0.9999
    )
    ema_warmup: bool = setting(False, "ramp the running-average decay up from 0.1 (short runs)")
    # transfer learning
    init_from: str | None = setting(
        None,
        "start from these weights: a name (`inception-v3 weights`), URL, file or "
        "checkpoint; new classifiers when the data's classes differ",
    )
    pretrained_lr_scale: float = setting(
        1.0,
        "learning-rate multiplier of the pretrained layers (the new classifiers get the full rate)",
        low=0,
        low_open=True,
        high=1,
    )
    freeze_until: str | None = setting(
        None, "freeze the pretrained layers up to and including this one", choices=TRUNK[1:]
    )
    freeze_bn: bool = setting(False, "keep the pretrained batch-norm statistics (batch norms in eval mode)")
    precise_bn_images: int = setting(
        1024,
        "training images that recompute batch-norm statistics before each validation (0: keep the running averages)",
        low=0,
    )
    # system
    device: str = setting("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    amp: str = setting("none", "mixed precision: none, bf16 or fp16 (CUDA)", choices=AMP_MODES)
    channels_last: bool = setting(False, "channels_last memory format")
    compile: bool = setting(False, "torch.compile the training step")
    sync_bn: bool = setting(False, "synchronize batch norm across replicas")
    seed: int = setting(0, "random seed (data order, augmentation, initialization)", low=0, high=2**31 - 1)
    deterministic: bool = setting(False, "torch.use_deterministic_algorithms")
    # run bookkeeping
    out_dir: str = setting("runs", "folder that holds the runs")
    name: str = setting("run", "run folder name (OUT_DIR/NAME)", name_like=True)
    checkpoint_every: int = setting(1000, "checkpoint every N steps (0: at epoch ends only)", low=0)
    keep_last: int = setting(3, "step checkpoints to keep", low=1)
    on_nonfinite: str = setting(
        "stop", "a non-finite loss or gradient: stop, or skip the step", choices=("stop", "skip")
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against its metadata; the message names the option, the value and what is allowed."""
        hints = typing.get_type_hints(TrainConfig)
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            base, optional = field_type(hints[f.name])
            option = "--" + f.name.replace("_", "-")
            if value is None and optional:
                continue
            if not _has_type(value, base):
                raise ValueError(f"invalid {option} {value!r}: expected {base.__name__}")
            bad = (meta["choices"] is not None and value not in meta["choices"]) or _out_of_range(value, meta)
            if meta["name_like"] and not _NAME.match(str(value)):
                bad = True
            if bad:
                if meta["choices"]:
                    raise ValueError(
                        f"invalid {option} {value!r}; valid values: {', '.join(map(str, meta['choices']))}"
                    )
                raise ValueError(f"invalid {option} {value!r}: must be {allowed(meta)}")

        if not self.init_from and (self.freeze_until or self.freeze_bn):
            raise ValueError("--freeze-until and --freeze-bn act on pretrained weights; give them with --init-from")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_type(hint: Any) -> tuple[type, bool]:
    """(the base type, whether None is allowed) of a field's annotation."""
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _has_type(value: Any, base: type) -> bool:
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _out_of_range(value: Any, meta: Mapping[str, Any]) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if value != value:  # NaN
        return True
    low, high = meta["low"], meta["high"]
    return (low is not None and (value <= low if meta["low_open"] else value < low)) or (
        high is not None and (value >= high if meta["high_open"] else value > high)
    )
