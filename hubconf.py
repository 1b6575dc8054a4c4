"""torch.hub entry points: `torch.hub.load("/path/to/inception-v3", "inception_v3", source="local")`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from inception_v3.models.inception import create_model
from inception_v3.weights import load_pretrained

dependencies = ["torch", "torchvision", "safetensors"]


def inception_v3(weights: str | None = None, preset: str = "inception_v3", **overrides):
    """Inception-v3 (or another preset); `weights` is a local file or save_pretrained directory."""
    if weights is None:
        return create_model(preset, **overrides)
    model, _ = load_pretrained(weights, preset=preset, **overrides)
    return model
