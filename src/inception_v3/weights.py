"""Public home of the weight functions: load, save and convert weights from any ecosystem.

`load_pretrained`, `save_pretrained`, `from_pretrained` and `LoadReport` live in `interop`;
`freeze_until` in `training.finetune`. This module gathers them under one stable name.
"""

from .interop.loading import LoadReport
from .interop.pretrained import from_pretrained, load_pretrained, save_pretrained
from .training.finetune import freeze_until

__all__ = ["LoadReport", "freeze_until", "from_pretrained", "load_pretrained", "save_pretrained"]
