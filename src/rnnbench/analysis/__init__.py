"""Tables across runs: aggregation, model labels, statistics, comparisons, baselines, publishing."""
