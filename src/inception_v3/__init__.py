"""Inception-v3 ("Rethinking the Inception Architecture for Computer Vision", Szegedy et al., 2016)."""

from .api import create_model, inception_v3
from .interop.pretrained import from_pretrained, load_pretrained, save_pretrained
from .interop.registry import list_weights
from .models.config import PRESETS, InceptionConfig, get_config
from .models.inception import Inception3, InceptionOutputs, min_input_size

__all__ = [
    "PRESETS",
    "Inception3",
    "InceptionConfig",
    "InceptionOutputs",
    "create_model",
    "from_pretrained",
    "get_config",
    "inception_v3",
    "list_weights",
    "load_pretrained",
    "min_input_size",
    "save_pretrained",
]
__version__ = "0.1.0"
