"""`TrainConfig`: every setting a training run depends on, each with its help line, the paper's value
where it has one, and the values it accepts (`utils.settings`), checked in one place (`TrainConfig.validate`).

The command line builds one `train` option per field from this metadata (type, choices, help), and a
run saves the resolved config as config.json and in every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data.formats import FORMATS
from ..models.config import PRESETS, RECEPTIVE_FIELDS
from ..models.inception import TRUNK
from ..utils.precision import AMP_MODES
from ..utils.settings import check_fields, setting


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
        "the data's format: "
        + "; ".join(f"{name}: {fmt.description}" for name, fmt in FORMATS.items())
        + " (a spec in DATA_DIR, such as hf:NAME, brings its own)",
        choices=tuple(FORMATS),
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
    amp: str = setting(
        "none",
        "mixed precision: none, bf16, fp16 (CUDA) or auto (bf16 where the device runs it natively, else none)",
        choices=AMP_MODES,
    )
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
        """Every field against its metadata (`check_fields`), then the settings that only work together."""
        check_fields(self)
        if not self.init_from and (self.freeze_until or self.freeze_bn):
            raise ValueError("`freeze_until` and `freeze_bn` act on pretrained weights; give them with `init_from`")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
