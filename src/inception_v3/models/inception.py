"""Inception-v3 and its paper variants.

`forward` returns logits in every mode, under TorchScript and `torch.export` alike; the auxiliary
logits come only from `forward_with_aux`. Parameter and buffer names match torchvision's
`Inception3`, so its checkpoints load with `strict=True`.

The forward pass is three public stages, `forward_stem` (to 35x35), `forward_preaux` (to the 17x17
grid the aux head reads) and `forward_postaux` (to 8x8), plus `forward_head`; `forward_intermediates`
returns the output of any top-level layer (FID's taps, feature pyramids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from .blocks import AuxHead, Mixed8, Mixed17, Mixed35, Reduction17to8, Reduction35to17
from .config import InceptionConfig, get_config
from .layers import ConvBN, InputNorm, init_weights


class InceptionOutputs(NamedTuple):
    """What a training step needs: main logits and, when the model has the head, aux logits."""

    logits: Tensor
    aux_logits: Tensor | None


def _out(n: int, kernel: int, stride: int) -> int:
    """Output length of an unpadded (VALID) conv or pool."""
    return (n - kernel) // stride + 1


def grid_sizes(cfg: InceptionConfig, size: int) -> dict[str, int]:
    """Side lengths of the main grids for an input side `size` (values < 1 mean it is too small)."""
    stride = 2 if cfg.receptive_field == 299 else 1
    # Conv2d_1a_7x7, or Conv2d_1a_3x3 then Conv2d_2a_3x3 (2b keeps the size)
    n = _out(size, 7, stride) if cfg.stem == "7x7" else _out(_out(size, 3, stride), 3, 1)
    if cfg.receptive_field != 79:
        n = _out(n, 3, 2)  # maxpool1
    g35 = _out(_out(n, 3, 1), 3, 2)  # Conv2d_4a_3x3, maxpool2
    g17 = _out(g35, 3, 2)
    aux = _out(_out(g17, 5, 3), 5, 1)  # the aux head's 5x5/3 pool, then its 5x5 conv
    return {"35": g35, "17": g17, "8": _out(g17, 3, 2), "aux": aux}


def check_input(x: Tensor, in_chans: int, min_size: int, receptive_field: int) -> None:
    """Raise ValueError naming the expected shape if `x` is not N x in_chans x H x W with H, W >= min_size."""
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input N x {in_chans} x H x W, got shape {list(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(
            f"expected {in_chans} input channel(s), got {x.shape[1]} "
            f"(shape {list(x.shape)}); set in_chans or convert the images"
        )
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            f"input {x.shape[2]}x{x.shape[3]} is smaller than the minimum {min_size}x{min_size} "
            f"for receptive field {receptive_field}; resize the images "
            f"(nominal size {receptive_field}x{receptive_field})"
        )


def min_input_size(cfg: InceptionConfig, with_aux: bool = False) -> int:
    """Smallest square input side the network (and, if asked, its aux head) accepts."""
    for size in range(1, 2048):
        sizes = grid_sizes(cfg, size)
        if min(sizes["35"], sizes["17"], sizes["8"]) >= 1 and (not with_aux or sizes["aux"] >= 1):
            return size
    raise ValueError("no input size up to 2048 fits this configuration")


# Top-level layers from the input to Mixed_7c in forward order; None entries (the other stem) are skipped.
TRUNK = (
    *("input_norm", "Conv2d_1a_7x7", "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1"),
    *("Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"),  # to 35x35
    *("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),  # to 17x17
    *("Mixed_7a", "Mixed_7b", "Mixed_7c"),  # to 8x8
)
CLASSIFIERS = ("fc", "AuxLogits.fc")


class Inception3(nn.Module):
    """Inception-v3 (Szegedy et al., 2016) built from an `InceptionConfig`."""

    __jit_ignored_attributes__: ClassVar[list[str]] = ["config"]

    def __init__(self, config: InceptionConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or InceptionConfig()
        self.in_chans = cfg.in_chans
        self.receptive_field = cfg.receptive_field
        self.min_size = min_input_size(cfg)
        self.min_size_aux = min_input_size(cfg, with_aux=True) if cfg.aux_logits else self.min_size
        d = cfg.depth
        first_stride = 2 if cfg.receptive_field == 299 else 1

        self.input_norm = InputNorm(cfg.mean, cfg.std) if cfg.normalize_input else nn.Identity()
        seven = cfg.stem == "7x7"
        self.Conv2d_1a_7x7 = ConvBN(cfg, cfg.in_chans, d(64), 7, stride=first_stride) if seven else None
        self.Conv2d_1a_3x3 = None if seven else ConvBN(cfg, cfg.in_chans, d(32), 3, stride=first_stride)
        self.Conv2d_2a_3x3 = None if seven else ConvBN(cfg, d(32), d(32), 3)
        self.Conv2d_2b_3x3 = None if seven else ConvBN(cfg, d(32), d(64), 3, padding=1)
        self.maxpool1 = nn.Identity() if cfg.receptive_field == 79 else nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = ConvBN(cfg, d(64), d(80), 1)
        self.Conv2d_4a_3x3 = ConvBN(cfg, d(80), d(192), 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)

        self.Mixed_5b = Mixed35(cfg, d(192), pool_features=32)
        self.Mixed_5c = Mixed35(cfg, self.Mixed_5b.out_channels, pool_features=64)
        self.Mixed_5d = Mixed35(cfg, self.Mixed_5c.out_channels, pool_features=64)
        self.Mixed_6a = Reduction35to17(cfg, self.Mixed_5d.out_channels)
        self.Mixed_6b = Mixed17(cfg, self.Mixed_6a.out_channels, channels_7x7=128)
        self.Mixed_6c = Mixed17(cfg, self.Mixed_6b.out_channels, channels_7x7=160)
        self.Mixed_6d = Mixed17(cfg, self.Mixed_6c.out_channels, channels_7x7=160)
        self.Mixed_6e = Mixed17(cfg, self.Mixed_6d.out_channels, channels_7x7=192)
        self.AuxLogits = AuxHead(cfg, self.Mixed_6e.out_channels) if cfg.aux_logits else None
        self.Mixed_7a = Reduction17to8(cfg, self.Mixed_6e.out_channels)
        self.Mixed_7b = Mixed8(cfg, self.Mixed_7a.out_channels)
        self.Mixed_7c = Mixed8(cfg, self.Mixed_7b.out_channels, max_pool=cfg.last_block_max_pool)
        self.num_features = self.Mixed_7c.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.fc = nn.Linear(self.num_features, cfg.num_classes)

        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": d(64), "reduction": 2, "module": "Conv2d_2b_3x3"},
            {"num_chs": d(192), "reduction": 4, "module": "Conv2d_4a_3x3"},
            {"num_chs": self.Mixed_5d.out_channels, "reduction": 8, "module": "Mixed_5d"},
            {"num_chs": self.Mixed_6e.out_channels, "reduction": 16, "module": "Mixed_6e"},
            {"num_chs": self.num_features, "reduction": 32, "module": "Mixed_7c"},
        ]
        init_weights(self)

    def check_input(self, x: Tensor, min_size: int) -> None:
        """Raise ValueError naming the expected shape if `x` cannot go through the network."""
        check_input(x, self.in_chans, min_size, self.receptive_field)

    def forward_features(self, x: Tensor) -> Tensor:
        """N x C x H x W images -> N x 2048 x 8 x 8 features (at the nominal size)."""
        self.check_input(x, self.min_size)
        x = self.forward_stem(self.input_norm(x))  # N x 192 x 35 x 35
        return self.forward_postaux(self.forward_preaux(x))  # N x 2048 x 8 x 8

    def forward_stem(self, x: Tensor) -> Tensor:
        """Normalized images -> N x 192 x 35 x 35 (Table 1's rows up to the first Inception module)."""
        if self.Conv2d_1a_7x7 is not None:
            x = self.Conv2d_1a_7x7(x)  # N x 64 x 147 x 147
        if self.Conv2d_1a_3x3 is not None and self.Conv2d_2a_3x3 is not None and self.Conv2d_2b_3x3 is not None:
            x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
            x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
            x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = self.maxpool1(x)  # N x 64 x 73 x 73 (79: no pool, 75 x 75)
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        return self.maxpool2(x)  # N x 192 x 35 x 35

    def forward_preaux(self, x: Tensor) -> Tensor:
        """N x 192 x 35 x 35 -> N x 768 x 17 x 17: the 35x35 modules, the first grid reduction, the 17x17 modules."""
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)  # N x 288 x 35 x 35
        # the grid reduction of Figure 10, then the 17x17 modules of Figure 6
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)  # N x 768 x 17 x 17
        x = self.Mixed_6c(x)  # N x 768 x 17 x 17
        x = self.Mixed_6d(x)  # N x 768 x 17 x 17
        x = self.Mixed_6e(x)  # N x 768 x 17 x 17
        return x  # what the aux head reads

    def forward_postaux(self, x: Tensor) -> Tensor:
        """N x 768 x 17 x 17 -> N x 2048 x 8 x 8: the second grid reduction and the 8x8 modules."""
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        return self.Mixed_7c(x)  # N x 2048 x 8 x 8

    @torch.jit.unused
    def forward_intermediates(self, x: Tensor, taps: Sequence[str] | None = None) -> dict[str, Tensor]:
        """The outputs of the named top-level layers (`trunk_names()`, e.g. "maxpool2", "Mixed_7c"; default:
        `feature_info`'s), in forward order; runs only as far as the last tap."""
        names = self.trunk_names()
        wanted = [info["module"] for info in self.feature_info] if taps is None else list(taps)
        unknown = [t for t in wanted if t not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {', '.join(unknown)}; valid layers: {', '.join(names)}")
        self.check_input(x, self.min_size)
        last = max(names.index(t) for t in wanted)
        out: dict[str, Tensor] = {}
        for name in names[: last + 1]:
            x = getattr(self, name)(x)
            if name in wanted:
                out[name] = x
        return {t: out[t] for t in wanted}

    @torch.jit.unused
    def trunk_names(self) -> list[str]:
        """Top-level layers from the input to Mixed_7c, in forward order (the aux head is a side branch)."""
        return [n for n in TRUNK if getattr(self, n) is not None]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Features -> logits (or the pooled N x 2048 vector with `pre_logits=True`)."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 2048
        return x if pre_logits else self.fc(self.dropout(x))  # N x num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Logits, in train and eval mode alike."""
        return self.forward_head(self.forward_features(x))

    def forward_with_aux(self, x: Tensor) -> InceptionOutputs:
        """Main and auxiliary logits (aux is None without the head), for training loops."""
        self.check_input(x, self.min_size_aux)
        x = self.forward_preaux(self.forward_stem(self.input_norm(x)))  # N x 768 x 17 x 17
        aux = self.AuxLogits(x) if self.AuxLogits is not None else None  # N x num_classes
        logits = self.forward_head(self.forward_postaux(x))  # N x num_classes
        return InceptionOutputs(logits, aux)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the main and the aux classifier with freshly initialized ones."""
        self.config = self.config.replace(num_classes=num_classes)
        self.fc = nn.Linear(self.num_features, num_classes)
        if self.AuxLogits is not None:
            self.AuxLogits.fc = nn.Linear(self.AuxLogits.fc.in_features, num_classes)
        init_weights(self, only=CLASSIFIERS)


def build_preset(preset: str = "inception_v3", **overrides: Any) -> Inception3:
    """A named preset (`inception-v3 models`) with config field overrides and fresh weights. The public builders
    that also load weights are `inception_v3.create_model` and `inception_v3.inception_v3`."""
    return Inception3(get_config(preset, **overrides))


# The FID tools' feature taps, named by their width in the full model: the layer each one average-pools.
FEATURE_TAPS = {64: "maxpool1", 192: "maxpool2", 768: "Mixed_6e", 2048: "Mixed_7c"}


def pooled_taps(model: Inception3, x: Tensor, taps: Sequence[int]) -> dict[int, Tensor]:
    """Spatially averaged outputs of the tapped layers (`FEATURE_TAPS`): tap -> N x channels."""
    unknown = [t for t in taps if t not in FEATURE_TAPS]
    if unknown:
        raise ValueError(f"invalid feature tap {unknown[0]}; valid values: {', '.join(map(str, FEATURE_TAPS))}")
    outputs = model.forward_intermediates(x, [FEATURE_TAPS[t] for t in taps])
    return {t: torch.flatten(nn.functional.adaptive_avg_pool2d(outputs[FEATURE_TAPS[t]], 1), 1) for t in taps}
