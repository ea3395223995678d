"""rnnbench: a reproducible benchmark of recurrent language models on Penn Treebank."""

__version__ = "0.1.0"
