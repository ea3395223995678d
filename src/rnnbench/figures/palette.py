"""One colour, line style and marker per model, the same in every figure (no torch import).

The colours are Okabe and Ito's colour-blind-safe set ("Color Universal Design", 2008), with
a dark teal for ``lstm+fb1``, black for ``min_lstm`` and olive / indigo (Paul Tol's) for the
LSTM's cell state in the gradient figures. Eight colours cannot all differ in lightness, so
every model also has a marker of its own (what tells rnn_relu, lstm and gru apart once printed
in grey), and a variant (``irnn`` of ``rnn_relu``, ``lstm+fb1`` of ``lstm``) keeps its cell's
hue family but is dashed. tests/test_figures.py checks the colours' pairwise CIE ΔE, in
normal vision and under simulated deuteranopia, protanopia and tritanopia (Machado et al.
2009).
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from typing import NamedTuple

import matplotlib.colors as mcolors

from rnnbench.analysis.labels import model_rank


class Style(NamedTuple):
    """How one model's lines and points look."""

    color: str
    linestyle: str | tuple
    marker: str


DASHED = (0, (5, 2))
DASH_DOT = (0, (4, 1.5, 1, 1.5))
DASH_DOT_DOT = (0, (6, 1.5, 1, 1.5, 1, 1.5))
# The model names of rnnbench.analysis.labels, less their other options (+bf16, +drop0.5):
# a figure that holds lstm and lstm+bf16 gives the second a shade of the first (see below).
MODEL_STYLES: dict[str, Style] = {
    "rnn_tanh": Style("#0072B2", "-", "o"),        # blue
    "rnn_relu": Style("#D55E00", "-", "s"),        # vermillion
    "irnn": Style("#E69F00", DASHED, "^"),         # orange: rnn_relu's family, dashed
    "gru": Style("#CC79A7", "-", "D"),             # reddish purple
    "lstm": Style("#009E73", "-", "v"),            # bluish green
    "lstm+fb1": Style("#004D40", DASHED, "P"),     # dark teal: lstm's family, dashed
    "min_gru": Style("#56B4E9", DASH_DOT, "X"),    # sky blue
    "min_lstm": Style("#000000", DASH_DOT_DOT, "*"),  # black
    # the LSTM's cell state, a curve of its own in the gradient figures
    "lstm (c)": Style("#999933", "-", "h"),        # olive
    "lstm+fb1 (c)": Style("#332288", DASHED, "p"),  # indigo
}
# Names of no known cell, in turn (Paul Tol's wine, grey, rose, sand).
SPARE = [Style("#882255", DASH_DOT, "<"), Style("#777777", DASHED, ">"),
         Style("#CC6677", DASH_DOT_DOT, "8"), Style("#DDCC77", DASH_DOT, "d")]
# A second model of one family in a figure (lstm beside lstm+bf16): its colour's lightness
# scaled by these factors in turn, with these line styles and markers.
SHADES = (0.6, 1.4, 0.4, 1.7)
EXTRA_DASHES = [(0, (2, 1)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2))]
EXTRA_MARKERS = ["d", "<", ">", "8"]


def family(name: str) -> str:
    """The key of MODEL_STYLES a model or curve name belongs to: ``lstm+fb1+bf16 (c)`` ->
    ``lstm+fb1 (c)``, ``irnn2`` -> ``irnn``, ``rnn_tanh+bf16`` -> ``rnn_tanh``."""
    model, _, state = name.partition(" ")
    head, *options = model.split("+")
    head = "irnn" if head.startswith("irnn") else head
    if head == "lstm" and "fb1" in options:
        head = "lstm+fb1"
    return " ".join(filter(None, [head, state]))


def model_order(names: Iterable[str]) -> list[str]:
    """The distinct model (or ``model (c)``) names in the comparison's order."""
    return sorted(dict.fromkeys(names), key=lambda n: (model_rank(n.split(" ")[0]), n))


def _shade(color: str, factor: float) -> str:
    h, light, s = colorsys.rgb_to_hls(*mcolors.to_rgb(color))
    return mcolors.to_hex(colorsys.hls_to_rgb(h, min(0.9, max(0.08, light * factor)), s))


def model_styles(names: Iterable[str]) -> dict[str, Style]:
    """A Style per model name: its family's (MODEL_STYLES); a second name of one family in
    the figure a shade of that colour with a line style and marker of its own; a name of no
    known family a spare style. Give every name of a figure at once, so its panels agree."""
    out: dict[str, Style] = {}
    taken: dict[str, int] = {}
    spare = iter(SPARE * 10)
    for name in model_order(names):
        key = family(name)
        if key not in MODEL_STYLES:
            out[name] = next(spare)
            continue
        k = taken[key] = taken.get(key, -1) + 1
        base = MODEL_STYLES[key]
        out[name] = base if k == 0 else Style(
            _shade(base.color, SHADES[(k - 1) % len(SHADES)]),
            EXTRA_DASHES[(k - 1) % len(EXTRA_DASHES)], EXTRA_MARKERS[(k - 1) % len(EXTRA_MARKERS)])
    return out


def model_colors(names: Iterable[str]) -> dict[str, str]:
    """The colour of each model name (see :func:`model_styles`)."""
    return {name: style.color for name, style in model_styles(names).items()}
