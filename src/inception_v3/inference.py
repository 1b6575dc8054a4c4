"""Public home of the fast inference paths (they live in `deploy.fast` and `deploy.int8`)."""

from .deploy.fast import FastInference, bf16_supported, fast_inference
from .deploy.int8 import Int8Model, quantize_int8

__all__ = ["FastInference", "Int8Model", "bf16_supported", "fast_inference", "quantize_int8"]
