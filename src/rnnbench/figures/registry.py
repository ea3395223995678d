"""Every figure of a study, once: its name (the file ``figures/{name}.png`` and ``.svg``, the
function that draws it, the caption ``workflow/report/{name}.rst``), the module that draws it,
the tables it is drawn from and its place in the report.

The rules' figure lists are made from this one (``names``), and ``python -m
rnnbench.figures.draw NAME`` draws any of them. Plain data: Snakemake imports it to build its
rules, so it imports neither matplotlib nor torch.
"""

from __future__ import annotations

import dataclasses

# What a figure is drawn from: the rule whose tables it reads, in the report's words.
SOURCES = {
    "metrics": "collect_metrics's runs, epochs and gradient-norm tables",
    "learning_curves": "learning_curves.csv (plot_learning_curves builds it first)",
    "reproduction": "runs.csv and the config's published numbers",
    "comparison": "compare_models's models.csv and runs.csv",
    "trials": "collect_trials's trials.csv and runs.csv",
    "gradients": "collect_gradients's tables and runs.csv",
    "context": "collect_context's context.csv",
    "sizes": "compare_sizes's sizes.csv and runs.csv",
}


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure: drawn by ``rnnbench.figures.{module}.{name}`` from the tables of
    ``source`` (a key of SOURCES), shown under ``category`` in the report."""

    name: str
    module: str
    source: str
    category: str
    # the report's label: the name in words where empty (plot_sizes, a wildcard rule, shows
    # the name itself)
    label: str = ""

    @property
    def report_label(self) -> str:
        """The figure's label in the report."""
        return self.label or self.name.replace("_", " ")


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("perplexity_vs_hidden", "plots", "metrics", "Perplexity"),
    FigureSpec("perplexity_vs_params", "plots", "metrics", "Perplexity"),
    FigureSpec("grad_norms", "curves", "metrics", "Gradients"),
    FigureSpec("learning_curves", "curves", "learning_curves", "Training"),
    FigureSpec("reproduction", "plots", "reproduction", "Perplexity"),
    FigureSpec("model_comparison", "plots", "comparison", "Perplexity"),
    FigureSpec("tuning_curve", "curves", "trials", "Tuning",
               "expected best validation perplexity vs trials"),
    FigureSpec("grad_vs_lag", "gradplots", "gradients", "Gradients"),
    FigureSpec("grad_norm_distribution", "gradplots", "gradients", "Gradients"),
    FigureSpec("grad_spectra", "gradplots", "gradients", "Gradients"),
    FigureSpec("grad_decay_rate_vs_hidden", "gradplots", "gradients", "Gradients"),
    FigureSpec("context_vs_k", "context_figures", "context", "Gradients"),
    FigureSpec("perplexity_vs_size", "sizes", "sizes", "Perplexity", "perplexity_vs_size"),
    FigureSpec("delta_vs_size", "sizes", "sizes", "Perplexity", "delta_vs_size"),
    FigureSpec("context_vs_size", "sizes", "sizes", "Perplexity", "context_vs_size"),
)
BY_NAME = {spec.name: spec for spec in FIGURES}


def names(source: str) -> list[str]:
    """The figures drawn from ``source``'s tables, in the registry's order."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
    return [spec.name for spec in FIGURES if spec.source == source]


def spec(name: str) -> FigureSpec:
    """The figure called ``name``; a ValueError naming the known ones otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown figure {name!r}: one of {', '.join(BY_NAME)}")
    return BY_NAME[name]
