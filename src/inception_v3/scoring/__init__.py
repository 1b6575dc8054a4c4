"""Scoring generative models: Inception Score, FID, KID and precision/recall, each equal to a reference tool's
numbers (torch-fidelity, clean-fid, pytorch-fid: `convention`).

```python
from inception_v3.scoring import calculate_metrics
calculate_metrics("samples/", "real/", fid=True, kid=True)                      # torch-fidelity's numbers
calculate_metrics(generate, "real_stats.npz", num_samples=50000, fid=True, convention="pytorch-fid")
```
"""

from .calculate import ScoringSettings, calculate_metrics, format_table, score
from .conventions import CONVENTIONS, Convention, get_convention
from .network import FID_WEIGHTS, LOGITS, feature_network, load_fid_network, tap_outputs
from .scores import (
    fid_from_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    statistics,
)
from .statistics import Reference, read_reference, save_stats

__all__ = [
    "CONVENTIONS",
    "FID_WEIGHTS",
    "LOGITS",
    "Convention",
    "Reference",
    "ScoringSettings",
    "calculate_metrics",
    "feature_network",
    "fid_from_statistics",
    "format_table",
    "frechet_distance",
    "get_convention",
    "inception_score",
    "kernel_inception_distance",
    "load_fid_network",
    "precision_recall",
    "read_reference",
    "save_stats",
    "score",
    "statistics",
    "tap_outputs",
]
