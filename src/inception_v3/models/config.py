"""Model configuration: one dataclass for every variant the paper studies, plus named presets.

The config is saved with every checkpoint (as a plain dict), so a model can always be rebuilt
exactly, including the input normalization its weights expect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RECEPTIVE_FIELDS = (299, 151, 79)
STEMS = ("factorized", "7x7")
ACTIVATIONS = ("relu", "linear")


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f"invalid {name} {value!r}; valid values: {', '.join(map(repr, choices))}")


def _check_fields(data: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(InceptionConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class InceptionConfig:
    """Everything that decides the network's structure and the input it expects.

    receptive_field: Table 2 of the paper. 299 = Table 1 stem; 151 = first conv stride 1;
        79 = first conv stride 1 and the first max pool removed. It is also the nominal input size.
    stem: "factorized" (three 3x3 convs, Inception-v3) or "7x7" (one 7x7/2 conv, Inception-v2).
    aux_logits: build the auxiliary head on top of Mixed_6e.
    aux_bn: batch-normalize the aux head's 768-wide "fully connected" layer (BN-auxiliary).
    factorized_activation: activation of the first layer of each factorized pair (Section 3.1).
    width_multiplier, min_depth: TF-slim's depth_multiplier / min_depth,
        channels = max(int(d * width_multiplier), min_depth).
    mean, std: the input normalization the weights expect; (0.5, 0.5, 0.5) is TF's [-1, 1].
    normalize_input: apply mean/std inside the model (stored in the state_dict as buffers).
    pool_include_pad: whether the blocks' 3x3 average pools count the zero padding (torchvision and
        timm: yes; TensorFlow/Keras "same" pooling: no).
    last_block_max_pool: Mixed_7c's pool branch max-pools (the 2015 graph used for FID) instead of averaging.
    """

    num_classes: int = 1000
    in_chans: int = 3
    receptive_field: int = 299
    stem: str = "factorized"
    aux_logits: bool = True
    aux_bn: bool = True
    factorized_activation: str = "relu"
    width_multiplier: float = 1.0
    min_depth: int = 16
    drop_rate: float = 0.2
    bn_eps: float = 0.001
    bn_momentum: float = 0.1
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    normalize_input: bool = False
    pool_include_pad: bool = True
    last_block_max_pool: bool = False

    def __post_init__(self) -> None:
        _check_choice("receptive_field", self.receptive_field, RECEPTIVE_FIELDS)
        _check_choice("stem", self.stem, STEMS)
        _check_choice("factorized_activation", self.factorized_activation, ACTIVATIONS)
        for name, value in (("num_classes", self.num_classes), ("in_chans", self.in_chans)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier!r}")
        if self.min_depth < 1:
            raise ValueError(f"min_depth must be >= 1, got {self.min_depth!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")
        # Lists from JSON become tuples, so configs compare and hash the same after a round trip.
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, values)
            if len(values) != self.in_chans:
                raise ValueError(
                    f"{name} has {len(values)} values but in_chans is {self.in_chans}; give one value per input channel"
                )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {self.std}")

    def depth(self, channels: int) -> int:
        """Scaled channel count (TF-slim's depth function)."""
        return max(int(channels * self.width_multiplier), self.min_depth)

    def replace(self, **changes: Any) -> InceptionConfig:
        """A copy with some fields changed (validated like a new config)."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InceptionConfig:
        _check_fields(data)
        return cls(**data)


@dataclass(frozen=True)
class Preset:
    """A named model: the paper's name for it and the config it stands for."""

    name: str
    description: str
    config: InceptionConfig = field(default_factory=InceptionConfig)


_V2 = InceptionConfig(stem="7x7", aux_bn=False)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("inception_v3", "Inception-v3 as released (TF-slim/torchvision/timm layout), 299x299"),
        Preset(
            "inception_v3_151",
            "Table 2: 151x151 receptive field (first conv stride 1, max pool kept)",
            InceptionConfig(receptive_field=151),
        ),
        Preset(
            "inception_v3_79",
            "Table 2: 79x79 receptive field (first conv stride 1, first max pool removed)",
            InceptionConfig(receptive_field=79),
        ),
        Preset("inception_v2", "Table 3: Inception-v2 (7x7/2 first conv, aux head without BN)", _V2),
        Preset(
            "inception_v2_factorized_7x7",
            "Table 3: + factorized 7x7 (three 3x3 stem convs), aux head without BN",
            InceptionConfig(aux_bn=False),
        ),
        Preset("inception_v3_no_aux", "Inception-v3 without the auxiliary head", InceptionConfig(aux_logits=False)),
        Preset(
            "inception_v3_fid",
            "The 2015 graph of the FID tools (pytorch-fid's pt_inception-2015-12-05): 1008 classes, no aux "
            "head, pools that skip padding, max pool in Mixed_7c",
            InceptionConfig(num_classes=1008, aux_logits=False, pool_include_pad=False, last_block_max_pool=True),
        ),
        Preset(
            "inception_v3_linear_factorized",
            "Section 3.1: linear (BN, no ReLU) first layer in each factorized pair",
            InceptionConfig(factorized_activation="linear"),
        ),
    ]
}


def get_config(preset: str = "inception_v3", **overrides: Any) -> InceptionConfig:
    """The config of a named preset, with optional field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset].config.replace(**overrides) if overrides else PRESETS[preset].config
