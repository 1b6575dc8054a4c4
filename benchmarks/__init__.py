"""Benchmarks against torchvision and timm: `python -m benchmarks.run`, `python -m benchmarks.table`."""
