"""Speed benchmarks of the training step: timings, profiles, peak memory, the naive loop."""
