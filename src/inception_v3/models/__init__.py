"""The network: config and presets, layers, Inception blocks, the model, and its accounting."""

from .config import PRESETS, InceptionConfig, get_config
from .inception import Inception3, InceptionOutputs, create_model, inception_v3, min_input_size

__all__ = ["PRESETS", "Inception3", "InceptionConfig", "InceptionOutputs", "create_model", "get_config",
           "inception_v3", "min_input_size"]  # fmt: skip
