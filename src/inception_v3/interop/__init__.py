"""Weights from every ecosystem: our format, torchvision/timm state dicts, Keras files."""
