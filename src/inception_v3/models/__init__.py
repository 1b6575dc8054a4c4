"""The network: config and presets, layers, Inception blocks, the model, and its accounting."""

from .config import PRESETS, InceptionConfig, get_config
from .inception import FEATURE_TAPS, Inception3, InceptionOutputs, build_preset, min_input_size, pooled_taps

__all__ = [
    "FEATURE_TAPS",
    "PRESETS",
    "Inception3",
    "InceptionConfig",
    "InceptionOutputs",
    "build_preset",
    "get_config",
    "min_input_size",
    "pooled_taps",
]
