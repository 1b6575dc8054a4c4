"""The paper's experiments as grids of training and evaluation runs, and their report."""
