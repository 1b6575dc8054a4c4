"""Transfer learning helpers: freezing the backbone up to a block, keeping batch-norm statistics fixed."""

from __future__ import annotations

from torch import nn

from ..errors import UserError
from ..models.inception import Inception3


def freeze_until(model: Inception3, block: str) -> list[str]:
    """Freeze every parameter up to and including the top-level module `block` (e.g. "Mixed_6e")."""
    names = [name for name, _ in model.named_children()]
    if block not in names:
        raise UserError(f"unknown block {block!r}; valid blocks: {', '.join(names)}")
    frozen = []
    for name, child in model.named_children():
        if name == "AuxLogits":
            continue
        for p_name, p in child.named_parameters():
            p.requires_grad_(False)
            frozen.append(f"{name}.{p_name}")
        if name == block:
            break
    return frozen


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every batch norm in eval mode: training then uses (and keeps) the pretrained statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
