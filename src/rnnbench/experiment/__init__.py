"""The experiment design: the grid of runs, their tuning (successive halving) and its trials."""
