"""Loading a state dict into a model, strictly, and the report of what was loaded.

Every tensor the model needs must come from the file, except `num_batches_tracked` counters and the
tensors the caller asked to initialize fresh: new classifiers (another class count, or a file without
one) and a new aux head. Anything else missing, or of another shape, is refused with the first keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import UserError
from ..models.inception import Inception3

CLASSIFIER_KEYS = ("fc.", "AuxLogits.fc.")
AUX_KEYS = ("AuxLogits.",)


@dataclass
class LoadReport:
    """What a load took from the file and what it initialized fresh, and what the weights come with."""

    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # in the file with another shape (a new class count)
    new: list[str] = field(default_factory=list)  # not in the file, initialized fresh as asked
    unexpected: list[str] = field(default_factory=list)  # in the file, not used by the model
    notes: list[str] = field(default_factory=list)  # e.g. "the file has no aux head: the model has none"
    classes: list[str] = field(default_factory=list)  # the class names stored with the weights, if any
    source: str = "weights as stored"  # which weights of a training checkpoint were used
    weights: str = ""  # the name, URL or path asked for
    file: str = ""  # the local file read
    preprocessing: dict[str, Any] = field(default_factory=dict)  # what the weights expect (see registry)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.replaced:
            parts.append(f"replaced {len(self.replaced)} ({_heads(self.replaced)}: new class count)")
        if self.new:
            parts.append(f"initialized {len(self.new)} new ({_heads(self.new)}: not in the file)")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} in the file unused")
        return ", ".join(parts) + "".join(f"; {n}" for n in self.notes)


def _heads(keys: list[str]) -> str:
    return ", ".join(sorted({k.rsplit(".", 1)[0] for k in keys}))


def load_into(
    model: Inception3, state: dict[str, Tensor], source: str, fresh: tuple[str, ...] = (), dropped: tuple[str, ...] = ()
) -> LoadReport:
    """Copy the file's tensors into `model`. Keys under a `fresh` prefix may be missing (they keep their
    new initialization) or, for classifiers, have another shape (replaced); anything else must match.
    File keys under a `dropped` prefix (a head the caller leaves out on purpose) are not reported as unused."""
    own, report = model.state_dict(), LoadReport()
    missing: list[str] = []
    mismatched: list[str] = []
    for key, value in own.items():
        allowed_fresh = key.startswith(fresh)
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                (report.new if allowed_fresh else missing).append(key)
        elif state[key].shape != value.shape:
            if allowed_fresh and key.startswith(CLASSIFIER_KEYS):
                report.replaced.append(key)
            else:
                mismatched.append(f"{key}: file {list(state[key].shape)} vs model {list(value.shape)}")
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in state if k not in own and not k.startswith(dropped)]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors the model needs are missing (first: {', '.join(missing[:3])})")
        if mismatched:
            problems.append(f"{len(mismatched)} have another shape (first: {'; '.join(mismatched[:3])})")
        raise UserError(f"{source} does not fit this architecture: {' and '.join(problems)}")
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state[key])
    return report
