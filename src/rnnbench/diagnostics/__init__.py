"""Measurements of a trained run: evaluation, gradients through time, effective context."""
