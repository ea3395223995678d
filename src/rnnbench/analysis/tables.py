"""Readable tables (Markdown and HTML) from the tidy CSVs, for the report and the README.

No torch import. Usage::

    python -m rnnbench.analysis.tables summary results/studies/grid/tables/summary.csv \\
        --out results/studies/grid/tables/summary.html
    python -m rnnbench.analysis.tables grad_decay results/studies/grid/tables/grad_decay.csv \\
        --out results/studies/grid/tables/grad_decay.html          # a .md --out writes Markdown

Numbers are rounded for reading (the CSVs keep every digit). "mean ± sd" is shown only where
more than one seed finished: one seed shows its value alone. A configuration with no finished
run shows "diverged (step N)" instead of a number, and a perplexity over part of a split
(``max_eval_batches``) carries a mark whose footnote gives the tokens scored of how many.
"""

from __future__ import annotations

import argparse
import html
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rnnbench.config import TRAINING_KEYS
from rnnbench.io import write_text

log = logging.getLogger(__name__)
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm"]
MARKS = ("†", "‡", "§", "¶")
DASH = "–"
STYLE = ("body{font-family:sans-serif;font-size:14px;margin:1em}"
         "table{border-collapse:collapse}"
         "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;"
         "white-space:nowrap}th{background:#f3f3f3}.name{text-align:left}"
         "p{font-size:13px;color:#333;max-width:60em}")


@dataclass
class Table:
    """Display strings: a header, rows, footnotes; the first ``text_columns`` hold names."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_columns: int = 0


def _flag(value: object) -> bool:
    """A boolean cell, also as read back from a CSV (True, 'True', 1); NaN is False."""
    return False if pd.isna(value) else str(value).strip().lower() in ("true", "1", "1.0")


def _text(value: object) -> str:
    """A name cell; a dash when missing."""
    return DASH if pd.isna(value) else str(value)


def _int(value: object) -> str:
    """An integer with thousands separators; a dash when missing."""
    return DASH if pd.isna(value) else f"{float(value):,.0f}"


def _value(value: object) -> str:
    """A config value as written in a config file (``null`` when unset)."""
    if pd.isna(value):
        return "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


def footnote_mark(i: int) -> str:
    """The i-th footnote mark."""
    return MARKS[i] if i < len(MARKS) else f"†{i + 1}"


def mean_sd(mean: float, sd: float, n: int, digits: int = 1) -> str:
    """``mean ± sd`` where n > 1, the value alone for one run, a dash for none."""
    if n < 1 or pd.isna(mean):
        return DASH
    text = f"{mean:,.{digits}f}"
    return text if n == 1 or pd.isna(sd) else f"{text} ± {sd:,.{digits}f}"


def steps_text(steps: object) -> str:
    """``step 12`` or ``steps 12, 40`` (each step once) from summary.csv's diverged_steps."""
    if pd.isna(steps) or not str(steps).strip():
        return ""
    items = sorted({int(float(s)) for s in str(steps).split(",") if s.strip()})
    return ("step " if len(items) == 1 else "steps ") + ", ".join(map(str, items))


def capped_note(row: pd.Series) -> str | None:
    """How much of each split a capped evaluation scored, or None when it scored all."""
    if not _flag(row.get("eval_capped")):
        return None
    parts = []
    for split in ("valid", "test"):
        tokens, total = row.get(f"{split}_tokens"), row.get(f"{split}_tokens_total")
        if pd.notna(tokens):
            parts.append(f"{tokens:,.0f} of {total:,.0f} {split}" if pd.notna(total)
                         else f"the first {tokens:,.0f} {split}")
    if not parts:
        return None
    cap = row.get("max_eval_batches")
    where = f" (max_eval_batches: {cap:.0f})" if pd.notna(cap) else ""
    return (f"evaluated on {' and '.join(parts)} tokens only{where}: not comparable with "
            "perplexities of the whole split")


def _spread_note(n: pd.Series, what: str) -> list[str]:
    """'mean ± sd over n seeds' only where some n > 1."""
    if (n > 1).any():
        one = "; where n = 1, that one run's value" if (n == 1).any() else ""
        return [f"{what.capitalize()}: mean ± sample sd over the n seeds that finished{one}."]
    if (n == 1).any():
        return [f"One seed per configuration: {what} are that run's values, with no spread."]
    return []


def varying_keys(summary: pd.DataFrame) -> list[str]:
    """Training keys that take more than one value within an experiment (a grid axis)."""
    keys = [k for k in TRAINING_KEYS if k in summary]
    if not keys:
        return []
    spread = summary.groupby(["corpus", "experiment"], dropna=False)[keys].nunique(dropna=False)
    return [k for k in keys if (spread[k] > 1).any()]


def summary_table(summary: pd.DataFrame) -> Table:
    """One row per configuration of summary.csv, with the columns a reader needs."""
    axes = varying_keys(summary)  # shown too: rows differing only there would look alike
    table = Table(["corpus", "experiment", "cell", "hidden", "layers", *axes, "params", "n",
                   "test ppl", "valid ppl", "train ppl", "s/epoch"], text_columns=3)
    marks: dict[str, str] = {}
    for _, r in summary.iterrows():
        n, n_div = int(r["n"]), int(r.get("n_diverged", 0) or 0)
        steps = steps_text(r.get("diverged_steps"))
        if n == 0:  # nothing finished: say what happened instead of a number
            ppl = [f"diverged ({steps})" if steps else ("diverged" if n_div else DASH)] * 3
        else:
            note = capped_note(r)
            mark = "" if note is None else " " + marks.setdefault(note, footnote_mark(len(marks)))
            ppl = [mean_sd(r[f"{m}_mean"], r[f"{m}_sd"], n) + mark
                   for m in ("test_ppl", "valid_ppl")]
            ppl.append(mean_sd(r["train_ppl_mean"], r["train_ppl_sd"], n))
        count = str(n)
        if n_div:
            count += f" ({n_div} diverged" + (f", {steps})" if steps and n else ")")
        secs = r["seconds_per_epoch_mean"]
        digits = 1 if pd.isna(secs) or secs >= 1 else 2
        table.rows.append([_text(r.get("corpus")), _text(r["experiment"]), _text(r["cell"]),
                           _int(r["hidden"]), _int(r["layers"]), *(_value(r[k]) for k in axes),
                           _int(r.get("params")), count,
                           *ppl, mean_sd(secs, r["seconds_per_epoch_sd"], n, digits)])
    table.notes = _spread_note(summary["n"], "perplexities and s/epoch")
    if summary.get("n_diverged", pd.Series(dtype=int)).fillna(0).gt(0).any():
        table.notes.append("Diverged runs (training loss not finite at the step given) are "
                           "counted beside n and left out of every mean; a configuration with "
                           "no finished run has no perplexity.")
    table.notes += [f"{mark} {note}." for note, mark in marks.items()]
    return table


def decay_table(decay: pd.DataFrame) -> Table:
    """Per configuration, layer and state (grad_decay.csv): the decay rate, trained and init."""
    names = [k for k in ("corpus", "experiment") if k in decay]
    table = Table([*names, "cell (state)", "hidden", "layers", "layer", "n", "rate, trained",
                   "× per step, trained", "rate, init", "× per step, init", "lags fitted"],
                  text_columns=len(names) + 1)
    if decay.empty:
        table.notes.append("No run has gradient measurements.")
        return table
    df = decay.assign(curve=decay["cell"].where(decay["state"] != "c", decay["cell"] + " (c)"),
                      _rank=decay["cell"].map({c: i for i, c in enumerate(CELL_ORDER)}))
    df = df.sort_values([*names, "_rank", "hidden", "layers", "layer", "curve"], kind="stable")
    counts = []
    for key, block in df.groupby([*names, "curve", "hidden", "layers", "layer"], sort=False):
        n = block["seed"].nunique()
        counts.append(n)
        rates = []
        for kind in ("trained", "init"):
            rate = block.loc[block["kind"] == kind, "decay_rate"].dropna()
            mean = rate.mean() if len(rate) else math.nan
            rates += [mean_sd(mean, rate.std(ddof=1), len(rate), 3),
                      DASH if pd.isna(mean) else f"{math.exp(mean):.3f}"]
        fitted = block["lags_fitted"]
        lags = (f"{fitted.min():.0f}" if fitted.min() == fitted.max()
                else f"{fitted.min():.0f}–{fitted.max():.0f}")
        *name_values, curve, hidden, layers, layer = key
        table.rows.append([*map(_text, name_values), curve, _int(hidden), _int(layers),
                           _int(layer), str(n), *rates, lags])
    lo, hi = df["min_lag"].min(), df["max_lag"].max()
    table.notes = [f"rate: slope of the mean log gradient norm ||dl_t/dh_(t-k)|| against the "
                   f"lag k, fitted over lags {lo:.0f} to {hi:.0f} (those with no zero or "
                   "underflowed norm: 'lags fitted'); × per step = exp(mean rate), the factor "
                   "by which the norm changes per step back in time (below 1: vanishing, above "
                   "1: exploding). trained: best-validation weights; init: at initialisation; "
                   "lstm (c): the LSTM's cell state; layer 0 is the bottom layer.",
                   *_spread_note(pd.Series(counts), "rates")]
    return table


def markdown(table: Table) -> str:
    """The table as GitHub Markdown, each footnote a paragraph below it."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    for note in table.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def html_page(table: Table, title: str) -> str:
    """The table as a small standalone HTML page (a report item)."""
    def cells(values: list[str], tag: str) -> str:
        return "".join(f"<{tag}{' class=name' if i < table.text_columns else ''}>"
                       f"{html.escape(v)}</{tag}>" for i, v in enumerate(values))

    rows = "\n".join(f"<tr>{cells(row, 'td')}</tr>" for row in table.rows)
    notes = "\n".join(f"<p>{html.escape(note)}</p>" for note in table.notes)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<table>\n<thead><tr>{cells(table.header, 'th')}</tr></thead>\n<tbody>\n{rows}\n"
            f"</tbody></table>\n{notes}\n</body></html>\n")


def summary_markdown(summary: pd.DataFrame) -> str:
    """summary.md: the readable summary across seeds."""
    return markdown(summary_table(summary))


def summary_html(summary: pd.DataFrame) -> str:
    """summary.html: the readable summary across seeds, for the report."""
    return html_page(summary_table(summary), "Summary across seeds")


BUILDERS: dict[str, tuple[Callable[[pd.DataFrame], Table], str]] = {
    "summary": (summary_table, "Summary across seeds"),
    "grad_decay": (decay_table, "Gradient decay rates"),
}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=sorted(BUILDERS), help="which table the CSV is")
    parser.add_argument("csv", type=Path, help="summary.csv or grad_decay.csv")
    parser.add_argument("--out", required=True, type=Path, help="an .html (or .md) file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    build, title = BUILDERS[args.table]
    # an empty file: a config whose runs measured nothing (a header alone is read as usual)
    frame = pd.read_csv(args.csv) if args.csv.stat().st_size else pd.DataFrame()
    table = build(frame)
    write_text(args.out, markdown(table) if args.out.suffix == ".md" else html_page(table, title))
    log.info("%s: %d rows -> %s", args.table, len(table.rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
