"""Loading a state dict into a model, and the report of what was loaded, replaced and missing."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import UserError
from ..models.inception import Inception3

CLASSIFIER_KEYS = ("fc.", "AuxLogits.fc.")


@dataclass
class LoadReport:
    """Which keys a load took from the file, which it replaced (new classifiers), which were missing."""

    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # the class names stored with the weights, if any
    source: str = "weights as stored"  # which weights of a training checkpoint were used

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)} tensors, replaced {len(self.replaced)} (new classifier), "
                f"missing {len(self.missing)}, unused {len(self.unexpected)}")  # fmt: skip


def load_into(model: Inception3, state: dict[str, Tensor], source: str) -> LoadReport:
    """Copy matching tensors; a classifier of another size is left freshly initialized; any other
    mismatch is an error listing the first differing keys and shapes."""
    own = model.state_dict()
    report = LoadReport()
    mismatched = []
    for key, value in own.items():
        if key not in state:
            report.missing.append(key)
        elif state[key].shape != value.shape:
            if key.startswith(CLASSIFIER_KEYS):
                report.replaced.append(key)
            else:
                mismatched.append(f"{key}: file {list(state[key].shape)} vs model {list(value.shape)}")
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in state if k not in own]
    if mismatched or len(report.loaded) < len(own) // 2:
        details = mismatched[:3] or report.missing[:3]
        raise UserError(f"{source} does not fit this architecture ({len(mismatched)} shape mismatches, "
                        f"{len(report.missing)} missing keys); first: {'; '.join(details)}")  # fmt: skip
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state[key])
    return report
