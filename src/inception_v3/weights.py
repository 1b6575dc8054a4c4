"""Public home of the weight functions: published weights by name, loading from any ecosystem, saving.

They live in `interop` (registry, download, pretrained, loading) and `training.finetune`; this module
gathers them under one stable name.
"""

from .interop.download import fetch
from .interop.loading import LoadReport
from .interop.pretrained import from_pretrained, load_pretrained, resolve_weights, save_pretrained
from .interop.registry import WeightsSpec, find_weights, get_weights, list_weights, register_weights
from .training.finetune import freeze_until

__all__ = ["LoadReport", "WeightsSpec", "fetch", "find_weights", "freeze_until", "from_pretrained", "get_weights",
           "list_weights", "load_pretrained", "register_weights", "resolve_weights", "save_pretrained"]  # fmt: skip
