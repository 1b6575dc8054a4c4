"""torch.hub entry points: `torch.hub.load("/path/to/inception-v3", "inception_v3", source="local",
weights="IMAGENET1K_V1")` (or from GitHub once published). `weights` is a name from
`inception-v3 weights`, an http(s) URL or a local file / save_pretrained folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from inception_v3.api import create_model

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def inception_v3(weights: str | None = None, preset: str = "inception_v3", **overrides):
    """Inception-v3 (or another preset), with weights by name, URL or path if given."""
    return create_model(preset, weights=weights, **overrides)
