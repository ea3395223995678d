"""One training run: the loop, lr schedule, gradient treatment, checkpoints, run record."""
