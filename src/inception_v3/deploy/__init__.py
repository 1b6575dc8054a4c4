"""Serving: batch-norm fusion, export (TorchScript, ONNX, exported program), the fast path and int8."""
