"""Evaluation: metrics and calibration, the paper's crop protocols, prediction, features and FID."""
