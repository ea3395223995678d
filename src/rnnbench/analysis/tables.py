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
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rnnbench.analysis.labels import IDENTITY, group_label, model_label, model_rank
from rnnbench.analysis.render import Table, html_page, markdown, write_page
from rnnbench.config import TRAINING_KEYS

log = logging.getLogger(__name__)
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm"]
MARKS = ("†", "‡", "§", "¶")
DASH = "–"


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


def model_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every row's ``model`` (the README's name: ``lstm+fb1+bf16``), computed
    from its cell and options where the column is absent or empty."""
    if frame.empty:
        return frame.assign(model=pd.Series(dtype=str))
    named = frame["model"] if "model" in frame else pd.Series(pd.NA, index=frame.index)
    return frame.assign(model=[m if isinstance(m, str) and m else model_label(r)
                               for m, (_, r) in zip(named, frame.iterrows(), strict=True)])


def summary_table(summary: pd.DataFrame) -> Table:
    """One row per configuration of summary.csv, with the columns a reader needs."""
    # shown too: rows differing only there would look alike (the model's name has its
    # variant options: lstm+fb1+bf16, rnnbench.analysis.labels)
    axes = [k for k in varying_keys(summary) if k not in IDENTITY]
    summary = model_names(summary)
    table = Table(["corpus", "experiment", "model", "hidden", "layers", *axes, "params", "n",
                   "test ppl", "valid ppl", "train ppl", "s/epoch"], text_columns=3)
    marks: dict[str, str] = {}
    for _, r in summary.iterrows():
        n, n_div = int(r["n"]), int(r.get("n_diverged", 0) or 0)
        steps = steps_text(r.get("diverged_steps"))
        if n == 0:  # nothing finished: say what happened instead of a number
            ppl = [f"diverged ({steps})" if steps else ("diverged" if n_div else DASH)] * 3
        else:
            mark = ""
            for note in (capped_note(r), untrained_unk_note(r)):
                if note is not None:
                    mark += " " + marks.setdefault(note, footnote_mark(len(marks)))
            ppl = [mean_sd(r[f"{m}_mean"], r[f"{m}_sd"], n) + mark
                   for m in ("test_ppl", "valid_ppl")]
            ppl.append(mean_sd(r["train_ppl_mean"], r["train_ppl_sd"], n))
        count = str(n)
        if n_div:
            count += f" ({n_div} diverged" + (f", {steps})" if steps and n else ")")
        secs = r["seconds_per_epoch_mean"]
        digits = 1 if pd.isna(secs) or secs >= 1 else 2
        table.rows.append([_text(r.get("corpus")), _text(r["experiment"]), _text(r["model"]),
                           _int(r["hidden"]), _int(r["layers"]), *(_value(r[k]) for k in axes),
                           _int(r.get("params")), count,
                           *ppl, mean_sd(secs, r["seconds_per_epoch_sd"], n, digits)])
    table.notes = _spread_note(summary["n"], "perplexities and s/epoch")
    if summary.get("n_diverged", pd.Series(dtype=int)).fillna(0).gt(0).any():
        table.notes.append("Diverged runs (training loss not finite at the step given) are "
                           "counted beside n and left out of every mean; a configuration with "
                           "no finished run has no perplexity.")
    table.notes += [f"{mark} {note}." for note, mark in marks.items()]
    table.notes += unk_notes(summary)
    return table


def untrained_unk_note(row: pd.Series) -> str | None:
    """Where ``<unk>`` occurs in valid/test but never in train (summary.csv's
    ``{split}_unk_share``): what that does to the perplexity, and the remedy; else None."""
    train, valid, test = (row.get(f"{s}_unk_share") for s in ("train", "valid", "test"))
    if pd.isna(train) or train > 0 or not ((valid or 0) > 0 or (test or 0) > 0):
        return None
    return (f"WARNING: <unk> is {valid:.1%} of valid and {test:.1%} of test tokens but never "
            "occurs in train: the model never trained on it and each <unk> gets the "
            "probability of an untrained output, so this perplexity is not comparable with "
            "any other and usually wrong in either direction. Remedy: a corpus.max_vocab "
            "below the vocabulary size, or <unk> in the train file")


def unk_notes(summary: pd.DataFrame) -> list[str]:
    """Per corpus, the share of train/valid/test tokens that are ``<unk>``."""
    if "valid_unk_share" not in summary:
        return []
    notes = []
    for corpus, block in summary.groupby("corpus", dropna=False, sort=False):
        train, valid, test = (block[f"{s}_unk_share"].max()
                              for s in ("train", "valid", "test"))
        if not (pd.isna(valid) and pd.isna(test)):
            notes.append(f"<unk> in {_text(corpus)}: {valid:.1%} of valid and {test:.1%} of "
                         f"test tokens (train: {train:.1%}).")
    return notes


def decay_table(decay: pd.DataFrame) -> Table:
    """Per configuration, layer and state (grad_decay.csv): the decay rate, trained and init."""
    names = [k for k in ("corpus", "experiment") if k in decay]
    table = Table([*names, "model (state)", "hidden", "layers", "layer", "n", "rate, trained",
                   "× per step, trained", "rate, init", "× per step, init", "lags fitted"],
                  text_columns=len(names) + 1)
    if decay.empty:
        table.notes.append("No run has gradient measurements.")
        return table
    decay = model_names(decay)
    df = decay.assign(curve=decay["model"].where(decay["state"] != "c", decay["model"] + " (c)"),
                      _rank=decay["model"].map(model_rank))
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


def _interval(low: object, high: object, spec: str = ".1f") -> str:
    """`` [low, high]``; empty where either end is missing."""
    if pd.isna(low) or pd.isna(high):
        return ""
    return f" [{format(float(low), spec)}, {format(float(high), spec)}]"


def _context(r: pd.Series, kind: str) -> list[str]:
    """An effective context over the seeds measured (rnnbench.analysis.context_tables): the value
    with its interval ("≥" when it is the longest k measured) and the seeds' range."""
    if pd.isna(r.get(f"{kind}_n")) or not r.get(f"{kind}_n"):
        return [DASH, DASH]
    at_least = "≥ " if _flag(r.get(f"{kind}_censored")) else ""
    low, high = r.get(f"{kind}_seed_min"), r.get(f"{kind}_seed_max")
    seeds = DASH if pd.isna(low) else (f"{low:g}" if low == high else f"{low:g}–{high:g}")
    return [f"{at_least}{r[kind]:g}" + _interval(r[f"{kind}_ci_low"], r[f"{kind}_ci_high"], "g"),
            seeds]


def context_table(summary: pd.DataFrame) -> Table:
    """context_summary.csv: per configuration, test perplexity and its effective contexts."""
    table = Table(["corpus", "experiment", "model", "hidden", "layers", "n", "test ppl",
                   "effective context [95% CI]", "seeds", "word-order context [95% CI]",
                   "seeds "], text_columns=3)
    for _, r in model_names(summary).iterrows():
        n = int(r["n"])
        table.rows.append([_text(r.get("corpus")), _text(r["experiment"]), _text(r["model"]),
                           _int(r["hidden"]), _int(r["layers"]), str(n),
                           mean_sd(r["test_ppl_mean"], r["test_ppl_sd"], n),
                           *_context(r, "effective_context"), *_context(r, "order_context")])
    table.notes = ["Effective context: the shortest past, in tokens, beyond which cutting the "
                   "text raises the loss by no more than the tolerance; word-order context: "
                   "the same with the past shuffled instead of cut (rnnbench.diagnostics."
                   "context). Each is that of the mean curve over the seeds measured, with the "
                   "95% interval of its t band; '≥' where it is the longest context measured; "
                   "seeds: the range of the seeds' own values.",
                   *_spread_note(summary["n"], "test perplexities")]
    return table


def trials_table(trials: pd.DataFrame) -> Table:
    """trials.csv: every trial of every rung, its point, validation perplexity and fate."""
    table = Table(["experiment", "model", "size", "rung", "grad", "lr", "status", "valid ppl",
                   "rank", "promoted", "selected"], text_columns=2)
    for _, r in trials.iterrows():
        status = _text(r.get("status"))
        if isinstance(r.get("reason"), str) and r["reason"]:
            status += f" ({r['reason']})"
        size = _text(r["model"]).split("-")[1] if "-" in _text(r["model"]) else DASH
        table.rows.append([_text(r["experiment"]), group_label(r["model"]), size,
                           _int(r["rung"]), _text(r.get("grad")), _value(r.get("lr")), status,
                           DASH if pd.isna(r.get("valid_ppl")) else f"{r['valid_ppl']:,.1f}",
                           _int(r.get("rank")), "yes" if _flag(r.get("promoted")) else "",
                           "yes" if _flag(r.get("selected")) else ""])
    table.notes = ["Each trial is ranked on validation perplexity alone (over the capped "
                   "evaluation of its rung); the best share of a rung is promoted to the next, "
                   "and the best of the last rung is selected for the final runs "
                   "(rnnbench.experiment.tuning)."]
    return table


def curves_table(curves: pd.DataFrame) -> Table:
    """learning_curves.csv: validation perplexity per model and epoch, mean and 95% CI."""
    table = Table(["experiment", "model", "size", "layers", "epoch", "tokens", "n",
                   "valid ppl mean [95% CI]"], text_columns=2)
    for _, r in curves.iterrows():
        table.rows.append([_text(r["experiment"]), _text(r["model"]), _text(r["size"]),
                           _int(r["layers"]), _int(r["epoch"]), _int(r["tokens"]),
                           _int(r["n"]), f"{r['mean']:,.1f}"
                           + _interval(r["ci_low"], r["ci_high"])])
    table.notes = ["Mean over the seeds still training at that epoch (n), with the t-based "
                   "95% confidence interval of the mean (none for one seed)."]
    return table


def summary_markdown(summary: pd.DataFrame) -> str:
    """summary.md: the readable summary across seeds."""
    return markdown(summary_table(summary))


def summary_html(summary: pd.DataFrame) -> str:
    """summary.html: the readable summary across seeds, for the report."""
    return html_page(summary_table(summary), "Summary across seeds")


BUILDERS: dict[str, tuple[Callable[[pd.DataFrame], Table], str]] = {
    "summary": (summary_table, "Summary across seeds"),
    "grad_decay": (decay_table, "Gradient decay rates"),
    "context_summary": (context_table, "Effective context across seeds"),
    "trials": (trials_table, "Every trial and rung"),
    "learning_curves": (curves_table, "Learning curves"),
}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=sorted(BUILDERS), help="which table the CSV is")
    parser.add_argument("csv", type=Path, help="the CSV of that table (e.g. summary.csv)")
    parser.add_argument("--out", required=True, type=Path, help="an .html (or .md) file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    build, title = BUILDERS[args.table]
    # an empty file: a config whose runs measured nothing (a header alone is read as usual)
    frame = pd.read_csv(args.csv) if args.csv.stat().st_size else pd.DataFrame()
    table = build(frame)
    write_page(args.out, table, title)
    log.info("%s: %d rows -> %s", args.table, len(table.rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
