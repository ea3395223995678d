"""The experiment design: config schema, the grid of runs, tuning, a run's plan and progress."""
