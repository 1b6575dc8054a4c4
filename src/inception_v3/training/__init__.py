"""Training with the paper's method: the loop, its settings and recipes, optimizer and schedule, losses,
running average, batch-norm recomputation, checkpoints and the run folder, distributed replicas."""
