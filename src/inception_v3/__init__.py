"""Inception-v3 ("Rethinking the Inception Architecture for Computer Vision", Szegedy et al., 2016)."""

from .models.config import PRESETS, InceptionConfig, get_config
from .models.inception import Inception3, InceptionOutputs, create_model, inception_v3, min_input_size

__all__ = [
    "PRESETS",
    "Inception3",
    "InceptionConfig",
    "InceptionOutputs",
    "create_model",
    "get_config",
    "inception_v3",
    "min_input_size",
]
__version__ = "0.1.0"
