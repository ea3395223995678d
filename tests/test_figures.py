"""Every figure on the smallest and the largest shapes of tables: no crash, no empty panel,
labels that say what is shown (rnnbench.figures, drawn through rnnbench.figures.registry)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from rnnbench.analysis import learning_curves as curve_tables
from rnnbench.analysis.learning_curves import learning_curve_table
from rnnbench.figures import curves, gradplots, plots
from rnnbench.figures.cli import save
from rnnbench.figures.draw import drawer
from rnnbench.figures.registry import names

# The columns of the real tables (runs.csv as rnnbench.analysis.aggregate writes it, the gradient
# tables as rnnbench.analysis.gradtables writes them).
RUNS_COLUMNS = (
    "experiment,run_id,cell,hidden,layers,seed,epochs,lr,decay_start,decay_factor,batch_size,"
    "bptt,grad,clip_norm,normalize_eps,loss_reduction,init,init_scale,dropout,embedding_size,"
    "max_batches,max_eval_batches,loss_impl,device,params,status,diverged_step,epochs_done,"
    "best_epoch,train_ppl,valid_ppl,test_ppl,test_stream_ppl,seconds_per_epoch,tokens_per_s,"
    "wall_seconds,resumes,grad_norm_p50,grad_norm_p90,grad_norm_p99,grad_norm_max,gpu,cpu,"
    "threads,torch,python,rnnbench,code_version,hostname,slurm_job_id,corpus,eval_capped"
).split(",")
EPOCH_COLUMNS = (
    "epoch,lr,train_loss,train_ppl,valid_loss,valid_ppl,seconds,tokens,tokens_per_s,"
    "grad_norm_p50,grad_norm_p90,grad_norm_p99,grad_norm_max,grad_norm_frac_above"
).split(",")
LABELS = ["experiment", "run_id", "cell", "hidden", "layers", "seed"]
DECAY = {"rnn_tanh": -3.1, "rnn_relu": -0.4, "lstm": -0.05, "gru": -0.1}  # per step
GATES = {"lstm": "ifgo", "gru": "rzn"}
# the figures drawn from these tables
ALL_FIGURES = [*names("metrics"), *names("learning_curves"), *names("gradients"),
               *names("reproduction")]


def grid(experiments: dict[str, dict]) -> list[dict]:
    """Label rows of every run: experiment -> {cells, hidden, layers, seeds}."""
    return [{"experiment": e, "run_id": f"{c}-h{h}-l{n}-s{s}", "cell": c, "hidden": h,
             "layers": n, "seed": s}
            for e, g in experiments.items()
            for c, h, n, s in itertools.product(g["cells"], g["hidden"], g["layers"], g["seeds"])]


def write_tables(folder: Path, experiments: dict[str, dict], epochs: int = 2,
                 diverged: set[str] = frozenset(), max_lag: int = 100) -> Path:
    """Every table the figures read, for the given grid; runs in ``diverged`` (run ids)
    diverged at step 3 of the first epoch, before any validation."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    runs, hist, norms, lags, decay, spectra, steps = [], [], [], [], [], [], []
    for lab in grid(experiments):
        bad = lab["run_id"] in diverged
        base = 100 + 50 * (lab["cell"].startswith("rnn")) + rng.normal(0, 2)
        row = dict.fromkeys(RUNS_COLUMNS)
        row.update(lab, status="diverged" if bad else "ok", diverged_step=3 if bad else None,
                   params=652_112 + 2000 * lab["hidden"] * lab["layers"]
                   * (4 if lab["cell"] == "lstm" else 1),
                   test_ppl=math.nan if bad else base, valid_ppl=math.nan if bad else base + 5,
                   epochs_done=0 if bad else epochs, corpus="ptb", eval_capped=True)
        runs.append(row)
        for e in range(0 if bad else epochs):
            hist.append({**dict.fromkeys(EPOCH_COLUMNS, 1.0), "epoch": e,
                         "valid_ppl": base * (1 + 1 / (e + 1)), **lab})
        for b in range(4 if bad else 100):
            norms.append({"step": b, "epoch": 0, "grad_norm_median": 0.5 + rng.random(),
                          "grad_norm_p10": 0.4, "grad_norm_p90": 2.0, "progress": (b + .5) / 100,
                          **lab})
        states = ["h", "c"] if lab["cell"] == "lstm" else ["h"]
        kinds = ["init"] if bad else ["trained", "init"]
        for kind, layer, state in itertools.product(kinds, range(lab["layers"]), states):
            rate = DECAY[lab["cell"]] * (2 if kind == "init" else 1) * (0.5 if state == "c" else 1)
            lags += [{**lab, "kind": kind, "layer": layer, "state": state, "lag": k,
                      "grad_norm": math.exp(rate * k), "log_grad_norm": rate * k,
                      "frac_floored": 0.0} for k in range(max_lag + 1)]
            decay.append({**lab, "kind": kind, "layer": layer, "state": state,
                          "decay_rate": rate + rng.normal(0, 0.01), "per_step_factor": 1.0,
                          "min_lag": 1, "max_lag": max_lag, "lags_fitted": max_lag})
        for e, layer in itertools.product(range(-1, 0 if bad else epochs), range(lab["layers"])):
            for gate in ["all", *GATES.get(lab["cell"], "")]:
                spectra.append({**lab, "epoch": e, "layer": layer, "gate": gate,
                                "sigma_max": 1 + e + rng.random()})
        q = np.linspace(0, 1, 201)
        steps += [{**lab, "quantile": v, "grad_norm": 0.2 + 3 * v ** 4, "n_steps": 60,
                   "n_nonfinite": 0} for v in q]
    tables = {"runs.csv": pd.DataFrame(runs),
              "epochs.csv": pd.DataFrame(hist, columns=[*EPOCH_COLUMNS, *LABELS]),
              "grad_norms.csv": pd.DataFrame(norms), "grad_through_time.csv": pd.DataFrame(lags),
              "grad_decay.csv": pd.DataFrame(decay), "spectra.csv": pd.DataFrame(spectra),
              "grad_steps.csv": pd.DataFrame(steps)}
    tables["learning_curves.csv"] = learning_curve_table(tables["epochs.csv"], tables["runs.csv"])
    for name, frame in tables.items():
        frame.to_csv(folder / name, index=False)
    return folder


def rebuild_curves(tables: Path) -> None:
    """learning_curves.csv again from the folder's epochs.csv and runs.csv, as the workflow
    builds it before the figure (rnnbench.analysis.learning_curves)."""
    assert curve_tables.main(["--tables", str(tables),
                              "--out", str(tables / "learning_curves.csv")]) == 0


def build(name: str, tables: Path):
    """The figure ``name`` of ``tables``, as a matplotlib Figure."""
    if name == "reproduction":  # every experiment with a published number
        published = pd.read_csv(tables / "runs.csv")["experiment"].unique()
        return plots.reproduction(tables, {e: {"test_ppl": 110.0} for e in published})
    return drawer(name)(tables).figure


def has_data(ax) -> bool:
    """Whether a panel draws some data (lines, points, bars, boxes), not just reference lines."""
    lines = [ln for ln in ax.lines if ln.get_gid() != "reference" and len(ln.get_xdata())]
    return bool(lines or ax.collections or [p for p in ax.patches if p.get_gid() != "reference"])


def texts(fig) -> str:
    """All the words of a figure: titles, labels, legends, notes."""
    return " ".join(" ".join(t.get_text().split()) for t in fig.findobj(plt.Text))


QUICK = {"cells": ["rnn_tanh", "rnn_relu", "lstm", "gru"], "hidden": [32], "layers": [1],
         "seeds": [1]}
SHAPES = {
    "one lstm, one epoch": ({"quick": {**QUICK, "cells": ["lstm"]}}, 1),
    "cells: [lstm]": ({"quick": {**QUICK, "cells": ["lstm"]}}, 2),
    "one gru": ({"quick": {**QUICK, "cells": ["gru"]}}, 2),
    "two runs": ({"quick": {**QUICK, "cells": ["rnn_tanh", "lstm"]}}, 2),
    "quick": ({"quick": QUICK}, 2),
    "grid": ({"grid": {**QUICK, "hidden": [32, 64], "layers": [1, 2], "seeds": [1, 2, 3]}}, 3),
    "reproduce": ({"seed_rnn": {**QUICK, "cells": ["rnn_tanh"], "hidden": [150],
                                "seeds": [1, 2, 3]},
                   "seed_lstm": {**QUICK, "cells": ["lstm"], "hidden": [300], "seeds": [1, 2, 3]},
                   "zaremba_small": {**QUICK, "cells": ["lstm"], "hidden": [200], "layers": [2],
                                     "seeds": [1, 2, 3]}}, 3),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ALL_FIGURES)
def test_every_figure_draws_every_shape_with_no_empty_panel(name, shape, tmp_path):
    experiments, epochs = SHAPES[shape]
    fig = build(name, write_tables(tmp_path, experiments, epochs))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes and all(has_data(ax) for ax in axes), [ax.get_title() for ax in axes]
    for ax in axes:  # a log axis says so
        assert ax.get_yscale() != "log" or "log scale" in ax.get_ylabel(), ax.get_ylabel()
        assert ax.get_xscale() != "log" or "log scale" in ax.get_xlabel(), ax.get_xlabel()
    save(fig, tmp_path / "fig" / f"{name}.png")
    assert (tmp_path / "fig" / f"{name}.svg").stat().st_size > 1000


def test_single_cell_perplexity_vs_hidden_is_drawn(tmp_path):
    # config/quick.yaml with cells: [lstm] crashed seaborn with ZeroDivisionError
    fig = plots.perplexity_vs_hidden(write_tables(tmp_path, {"quick": {**QUICK,
                                                                      "cells": ["lstm"]}}))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32"]
    assert "one seed per point, no interval" in ax.get_ylabel()


@pytest.mark.parametrize("name", ["grad_vs_lag", "grad_decay_rate_vs_hidden",
                                  "grad_norm_distribution", "grad_spectra", "learning_curves",
                                  "grad_norms", "perplexity_vs_hidden"])
def test_multi_experiment_figures_have_one_panel_per_experiment_and_size(name, tmp_path):
    experiments, epochs = SHAPES["reproduce"]
    fig = build(name, write_tables(tmp_path, experiments, epochs))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == len(set(titles))
    for experiment in experiments:
        assert any(t.startswith(f"{experiment}:") for t in titles), titles
    # three experiments, one size each; zaremba_small's two layers get a panel each where
    # the figure is per layer, its two gate blocks views where per block
    expected = {"grad_vs_lag": 4, "grad_decay_rate_vs_hidden": 4, "grad_spectra": 5}
    assert len(titles) == expected.get(name, 3), titles


def test_grad_vs_lag_cuts_a_steep_curve_and_names_it(tmp_path):
    fig = gradplots.grad_vs_lag(write_tables(tmp_path, {"quick": QUICK}))
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert math.log10(high / low) <= gradplots.CUT_DECADES + 1  # not 10^0 .. 10^-270
    assert "rnn_tanh (trained) at lag" in texts(fig)
    assert f"{gradplots.CUT_DECADES} decades below its top" in texts(fig)


def test_grad_vs_lag_draws_lstm_h_and_c_in_different_colours_and_line_styles(tmp_path):
    fig = gradplots.grad_vs_lag(write_tables(tmp_path, {"quick": {**QUICK, "cells": ["lstm"]}}))
    (ax,) = fig.axes
    trained = [ln for ln in ax.lines if ln.get_linewidth() > 1.5]  # trained: the thick ones
    assert len(trained) == 2
    h, c = trained
    assert h.get_color() != c.get_color() and h.get_linestyle() != c.get_linestyle()


def test_decay_rates_of_one_hidden_size_are_dodged_apart(tmp_path):
    fig = gradplots.grad_decay_rate_vs_hidden(write_tables(tmp_path, {"quick": QUICK}))
    (ax,) = fig.axes
    xs = [x for ln in ax.lines if ln.get_gid() != "reference" for x in ln.get_xdata()]
    assert len(set(np.round(xs, 6))) == 10  # 5 curves x trained/init, each its own x
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32"]


def test_spectra_panels_have_their_own_legend_with_distinct_colours(tmp_path):
    fig = gradplots.grad_spectra(write_tables(tmp_path, {"quick": QUICK}))
    assert len(fig.axes) == 3  # whole W_hh, LSTM gate blocks, GRU gate blocks
    for ax in fig.axes:
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        colors = [tuple(h.get_color()) if not isinstance(h.get_color(), str) else h.get_color()
                  for h in legend.legend_handles]
        assert len(set(colors)) == len(labels)
        assert len(labels) == {"whole": 4, "LSTM": 4, "GRU": 3}[
            next(k for k in ("whole", "LSTM", "GRU") if k in ax.get_title())]


def test_spread_labels_say_how_many_seeds(tmp_path):
    one = plots.perplexity_vs_hidden(write_tables(tmp_path / "a", {"quick": QUICK}))
    three = plots.perplexity_vs_hidden(write_tables(tmp_path / "b", {"q": {**QUICK,
                                                                         "seeds": [1, 2, 3]}}))
    assert "one seed per point" in one.axes[0].get_ylabel()
    # the one interval of every figure: the t 95% CI over seeds, not mean ± sd
    assert "mean, 95% CI over 3 seeds" in three.axes[0].get_ylabel()


def test_parameter_axis_over_a_narrow_range_has_tick_labels(tmp_path):
    # the quick config's 652k-658k: a log axis there showed no tick label at all
    fig = plots.perplexity_vs_params(write_tables(tmp_path, {"quick": QUICK}))
    (ax,) = fig.axes
    fig.canvas.draw()
    low, high = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert len([s for s in shown if s]) >= 2 and all(s.endswith("k") for s in shown if s)
    assert ax.get_xscale() == "linear"


@pytest.mark.parametrize("name", ALL_FIGURES)
def test_all_runs_diverged_gives_a_figure_naming_each_run_and_step(name, tmp_path):
    experiments = {"quick": {**QUICK, "cells": ["rnn_tanh", "lstm"]}}
    ids = {r["run_id"] for r in grid(experiments)}
    fig = build(name, write_tables(tmp_path, experiments, diverged=ids))
    words = texts(fig)
    for run_id in ids:
        assert f"quick/{run_id}" in words and "diverged at step 3" in words, words


@pytest.mark.parametrize("name", ALL_FIGURES)
def test_some_runs_diverged_are_named_and_the_rest_plotted(name, tmp_path):
    fig = build(name, write_tables(tmp_path, {"quick": QUICK}, diverged={"rnn_relu-h32-l1-s1"}))
    assert all(has_data(ax) for ax in fig.axes)
    assert "quick/rnn_relu-h32-l1-s1" in texts(fig)


@pytest.fixture(autouse=True)
def _close_figures():
    """Free each test's figures."""
    yield
    plt.close("all")


def add_variant(folder: Path, cell: str, axis: str, shift: float) -> None:
    """Every table of ``folder`` gets a variant of ``cell`` (run ids with ``axis``, as
    rnnbench.experiment.grid writes them), its perplexities and norms shifted by ``shift``."""
    for path in folder.glob("*.csv"):
        if path.name == "learning_curves.csv":  # a table of tables, rebuilt below
            continue
        df = pd.read_csv(path)
        twin = df[df["cell"] == cell].copy()
        twin["run_id"] = twin["run_id"].str.replace(r"(-s\d+)$", f"-{axis}\\1", regex=True)
        for column in ("test_ppl", "valid_ppl", "grad_norm_median", "grad_norm"):
            if column in twin:
                twin[column] = twin[column] * shift
        pd.concat([df, twin]).to_csv(path, index=False)
    rebuild_curves(folder)


@pytest.mark.parametrize("name", ["perplexity_vs_hidden", "learning_curves", "grad_norms",
                                  "grad_vs_lag", "grad_norm_distribution"])
def test_variants_are_models_of_their_own_in_distinct_colours(name, tmp_path):
    tables = write_tables(tmp_path, {"quick": QUICK})
    add_variant(tables, "rnn_relu", "irnn1", 1.5)
    add_variant(tables, "lstm", "forget_bias1", 0.9)
    fig = build(name, tables)
    (ax,) = fig.axes
    if name == "grad_norm_distribution":  # one box per model, each its own colour
        shown = dict(zip([t.get_text() for t in ax.get_xticklabels()],
                         [p.get_facecolor()[:3] for p in ax.patches], strict=True))
    else:
        legend = ax.get_legend()
        shown = {t.get_text(): matplotlib.colors.to_rgb(h.get_color())
                 for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
                 if "," not in t.get_text()}  # grad_vs_lag: the line styles' entries
    assert {"rnn_relu", "irnn", "lstm", "lstm+fb1"} <= set(shown), shown
    assert len(set(shown.values())) == len(shown), shown


def test_learning_curve_table_gives_the_t_interval_over_seeds_per_tokens_seen(tmp_path):
    rows = [{"experiment": "e", "run_id": f"{c}-h8-l1-s{s}", "cell": c, "hidden": 8,
             "layers": 1, "seed": s, "epoch": e, "tokens": 500, "valid_ppl": v}
            for c, s, curve in [("lstm", 1, [100.0, 90.0]), ("lstm", 2, [110.0, 96.0]),
                                ("gru", 1, [120.0, 99.0]), ("gru", 2, [1e9])]
            for e, v in enumerate(curve)]
    runs = pd.DataFrame([{"experiment": "e", "run_id": r["run_id"],
                          "status": "diverged" if r["run_id"] == "gru-h8-l1-s2" else "ok"}
                         for r in rows]).drop_duplicates()
    table = learning_curve_table(pd.DataFrame(rows), runs)
    lstm = table[table["model"] == "lstm"].set_index("tokens")
    assert list(lstm.index) == [500, 1000]  # tokens seen: each epoch's tokens, summed
    # mean 105, sd 7.0711, t(0.975, 1) = 12.7062: 105 ± 12.7062 * 7.0711 / sqrt(2)
    assert lstm.loc[500, ["n", "mean"]].tolist() == [2, 105.0]
    assert lstm.loc[500, "ci_low"] == pytest.approx(105 - 63.531, abs=1e-3)
    assert lstm.loc[500, "ci_high"] == pytest.approx(105 + 63.531, abs=1e-3)
    gru = table[table["model"] == "gru"]  # the diverged seed is left out: n = 1, no interval
    assert gru["n"].tolist() == [1, 1] and gru["ci_low"].isna().all()
    assert gru["mean"].tolist() == [120.0, 99.0]


def test_tuning_curve_leaves_out_an_overflowing_trial_and_uses_a_log_axis(tmp_path):
    from rnnbench.figures.curves import tuning_curve

    group = "rnn_relu-p250k-l1-irnn1"
    trials = [{"corpus": "ptb", "experiment": "fair", "model": group, "cell": "rnn_relu",
               "hidden": 353, "layers": 1, "budget": 250000, "rung": 0,
               "run_id": f"{group}-lr{lr}-rung0-s1", "status": status, "valid_ppl": ppl}
              for lr, status, ppl in [(1, "ok", 800.0), (2, "ok", 900.0), (3, "ok", 3.3e137),
                                      (4, "diverged", None)]]
    pd.DataFrame(trials).to_csv(tmp_path / "trials.csv", index=False)
    pd.DataFrame([{"experiment": "fair", "run_id": f"{group}-s1", "status": "ok",
                   "vocab_size": 10000}]).to_csv(tmp_path / "runs.csv", index=False)
    fig = tuning_curve(tmp_path)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    (line,) = [ln for ln in ax.lines if len(ln.get_xdata())]
    assert line.get_label() == "irnn (2 trials, 2 left out)"
    # E[min] of 1 and of 2 draws with replacement: 850, then 800 * 3/4 + 900 * 1/4
    assert list(line.get_ydata()) == pytest.approx([850.0, 825.0])
    assert ax.get_ylim()[1] < 1e4
    # the figure counts the trials left out (the full list is trials.csv's, not the figure's)
    words = texts(fig)
    assert "Left out of the expectation: 2 of 4 first-rung trials (1 diverged, 1 with no " \
        "finite perplexity or one above the vocabulary size); trials.csv lists each." in words
    assert "lr4" not in words and "3.3e+137" not in words


@pytest.mark.parametrize("name, panels", [("grad_vs_lag", 1), ("grad_norm_distribution", 1),
                                          ("grad_spectra", 3)])
def test_models_of_one_budget_share_a_gradient_panel_whatever_their_hidden_size(name, panels,
                                                                                tmp_path):
    # at 4M total parameters each cell has its own hidden size (196, 189, 186): the panel is
    # the size label, as in the other curve figures, not the hidden size
    tables = write_tables(tmp_path, {"quick": QUICK})
    hidden = {"rnn_tanh": 196, "rnn_relu": 196, "gru": 189, "lstm": 186}
    for table in ("grad_through_time.csv", "grad_steps.csv", "spectra.csv"):
        df = pd.read_csv(tables / table)
        df = df.assign(hidden=df["cell"].map(hidden), size="t4M")
        df.to_csv(tables / table, index=False)
    fig = build(name, tables)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == panels, titles
    assert all(t.startswith("t4M") for t in titles), titles


def test_learning_curves_end_the_mean_where_a_seed_stops_and_draw_the_rest_per_seed(tmp_path):
    # under the plateau schedule seeds stop at different epochs: a mean over the seeds still
    # training would rise or fall with who stopped, so the mean line ends at the last point
    # of all seeds and the seeds that go on are drawn one by one, thin and faint
    tables = write_tables(tmp_path, {"grid": {**QUICK, "seeds": [1, 2, 3]}}, epochs=3)
    epochs = pd.read_csv(tables / "epochs.csv")
    stopped = (epochs["cell"] == "lstm") & (epochs["seed"] == 3) & (epochs["epoch"] == 2)
    epochs[~stopped].to_csv(tables / "epochs.csv", index=False)
    rebuild_curves(tables)
    fig = curves.learning_curves(tables)
    (ax,) = fig.axes
    (mean,) = [ln for ln in ax.lines if ln.get_label() == "lstm"]
    assert list(mean.get_xdata()) == [1.0, 2.0]  # tokens seen after epochs 0 and 1 of 3
    tails = [ln for ln in ax.lines if ln.get_gid() == "seed-tail"]
    assert len(tails) == 2  # seeds 1 and 2, from the mean's last point to their own end
    assert all(list(t.get_xdata()) == [2.0, 3.0] for t in tails)
    assert all(t.get_linewidth() < mean.get_linewidth() and t.get_alpha() < 1 for t in tails)
    assert "not a mean" in texts(fig)
    plain = curves.learning_curves(write_tables(tmp_path / "all", {"grid": QUICK}, epochs=3))
    assert not [ln for ln in plain.axes[0].lines if ln.get_gid() == "seed-tail"]
    assert "not a mean" not in texts(plain)


def test_a_total_budget_is_named_as_in_the_tables_in_the_learning_curve_panels(tmp_path):
    # epochs.csv carries the budget's kind (rnnbench.analysis.aggregate.labels): a 4M total
    # budget is the panel "t4M", as in comparisons.md, not a 4M recurrent budget "p4M"
    tables = write_tables(tmp_path, {"grid": QUICK}, epochs=2)
    for name in ("epochs.csv", "runs.csv"):
        df = pd.read_csv(tables / name).drop(columns="size", errors="ignore")
        df.assign(budget=4_000_000, budget_kind="total").to_csv(tables / name, index=False)
    rebuild_curves(tables)
    titles = [ax.get_title() for ax in curves.learning_curves(tables).axes]
    assert titles and all(t.startswith("t4M") for t in titles), titles


# -- the palette, the legends, the ticks, the interval (issue #33) ------------------------------
# Machado, Oliveira and Fernandes (2009), severity 1: linear-RGB matrices of dichromacy.
CVD = {"deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]],
       "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                      [-0.003882, -0.048116, 1.051998]],
       "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                      [0.004733, 0.691367, 0.303900]]}


def _linear(color: str) -> np.ndarray:
    rgb = np.array(matplotlib.colors.to_rgb(color))
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _lab(linear: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of a linear-RGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ np.clip(linear, 0, 1)
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_hand_checked_lab_of_white_black_and_grey():
    assert _lab(_linear("#ffffff")) == pytest.approx([100, 0, 0], abs=0.05)
    assert _lab(_linear("#000000")) == pytest.approx([0, 0, 0], abs=0.05)
    assert _lab(_linear("#777777"))[0] == pytest.approx(50.0, abs=0.5)  # sRGB 119 is L* 50


@pytest.mark.parametrize("vision", ["normal", *CVD])
def test_every_model_colour_is_told_apart_in_colour_and_by_colour_blind_readers(vision):
    from rnnbench.figures.palette import MODEL_STYLES

    matrix = np.eye(3) if vision == "normal" else np.array(CVD[vision])
    lab = {m: _lab(matrix @ _linear(s.color)) for m, s in MODEL_STYLES.items()}
    # CIE76 ΔE: about 2.3 is just noticeable; neighbours on a chart want well over 10
    least = min((np.linalg.norm(lab[a] - lab[b]), a, b)
                for a, b in itertools.combinations(lab, 2))
    assert least[0] >= (25 if vision == "normal" else 12), least


def test_models_close_in_grey_differ_in_marker_and_variants_in_line_style_too():
    from rnnbench.figures.palette import MODEL_STYLES, family

    lightness = {m: _lab(_linear(s.color))[0] for m, s in MODEL_STYLES.items()}
    looks = [(s.linestyle, s.marker) for s in MODEL_STYLES.values()]
    assert len({m for _, m in looks}) == len(looks)  # a marker of its own for every model
    for a, b in itertools.combinations(MODEL_STYLES, 2):
        if abs(lightness[a] - lightness[b]) < 10:  # alike once printed in grey
            assert MODEL_STYLES[a].marker != MODEL_STYLES[b].marker, (a, b)
    for variant, cell in [("irnn", "rnn_relu"), ("lstm+fb1", "lstm")]:
        assert MODEL_STYLES[variant].linestyle != MODEL_STYLES[cell].linestyle
    assert family("lstm+fb1+bf16 (c)") == "lstm+fb1 (c)" and family("irnn2") == "irnn"


def test_a_second_model_of_one_family_gets_a_colour_line_style_and_marker_of_its_own():
    from rnnbench.figures.palette import MODEL_STYLES, model_styles

    styles = model_styles(["lstm+bf16", "lstm", "rnn_tanh+bf16", "mystery"])
    assert styles["lstm"] == MODEL_STYLES["lstm"]  # the plain model keeps its family's look
    assert styles["rnn_tanh+bf16"] == MODEL_STYLES["rnn_tanh"]  # alone in its family
    assert all(a != b for a, b in zip(styles["lstm"], styles["lstm+bf16"], strict=True))
    assert styles["mystery"].color not in {s.color for s in MODEL_STYLES.values()}


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("name", ["perplexity_vs_hidden", "learning_curves", "grad_norms",
                                  "grad_vs_lag", "grad_spectra", "perplexity_vs_params",
                                  "grad_decay_rate_vs_hidden", "reproduction"])
def test_legends_sit_outside_the_data(name, tmp_path):
    fig = build(name, write_tables(tmp_path, {"grid": {**QUICK, "hidden": [32, 64],
                                                       "seeds": [1, 2]}}))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for ax, leg in legends:
        assert not _boxes_overlap(leg.get_window_extent(renderer),
                                  ax.get_window_extent(renderer)), (name, ax.get_title())


def _tuning_tables(folder: Path, trials: int) -> Path:
    group = "lstm-p250k-l1"
    rows = [{"corpus": "ptb", "experiment": "fair", "model": group, "cell": "lstm",
             "hidden": 100, "layers": 1, "budget": 250000, "rung": 0,
             "run_id": f"{group}-lr{i}-rung0-s1", "status": "diverged" if i % 5 == 0 else "ok",
             "valid_ppl": None if i % 5 == 0 else 300.0 + 7 * i} for i in range(trials)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    return folder


def test_tuning_curve_tick_labels_do_not_run_together_and_the_legend_counts_the_rest(tmp_path):
    fig = curves.tuning_curve(_tuning_tables(tmp_path, 40))
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = ax.get_xlim()
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()
                    if t.get_text() and low <= t.get_position()[0] <= high), key=lambda b: b.x0)
    assert len(boxes) >= 3
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes)), [(b.x0, b.x1) for b in boxes]
    (label,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert label == "lstm (32 trials, 8 left out)"
    assert "lr5" not in texts(fig)  # the left-out trials are counted, listed in trials.csv only


def test_model_comparison_draws_each_seed_as_a_dot(tmp_path):
    from rnnbench.analysis.compare import models

    tables = write_tables(tmp_path, {"q": {**QUICK, "seeds": [1, 2, 3]}},
                          diverged={"gru-h32-l1-s2"})
    models(pd.read_csv(tables / "runs.csv")).to_csv(tables / "models.csv", index=False)
    fig = plots.model_comparison(tables)
    (ax,) = fig.axes
    dots = [c for c in ax.collections if c.get_gid() == "seed"]
    assert sorted(len(c.get_offsets()) for c in dots) == [2, 3, 3, 3]  # gru: 2 finished
    runs = pd.read_csv(tables / "runs.csv")
    lstm = runs.loc[runs["cell"] == "lstm", "test_ppl"].sort_values().tolist()
    assert any(sorted(c.get_offsets()[:, 0]) == pytest.approx(lstm) for c in dots)
    assert "small dots: each seed" in texts(fig)


def test_perplexity_vs_hidden_bars_are_the_t_95_percent_interval_over_seeds(tmp_path):
    from scipy import stats

    tables = write_tables(tmp_path, {"q": {**QUICK, "cells": ["lstm"], "seeds": [1, 2, 3]}})
    fig = plots.perplexity_vs_hidden(tables)
    (ax,) = fig.axes
    ppl = pd.read_csv(tables / "runs.csv")["test_ppl"]
    half = stats.t.ppf(0.975, 2) * ppl.std(ddof=1) / math.sqrt(3)  # not the sd
    (bars,) = [c for c in ax.containers]
    (segment,) = bars.lines[2][0].get_segments()
    assert segment[:, 1] == pytest.approx([ppl.mean() - half, ppl.mean() + half])
    assert "95% CI" in ax.get_ylabel() and "sd" not in ax.get_ylabel()


def test_context_markers_at_one_k_are_stacked_apart_and_the_seed_count_is_exact():
    from rnnbench.figures import context_figures

    placed: list[float] = []
    ys = [context_figures._stagger(k, placed) for k in (10.0, 10.0, 30.0, 10.0)]
    assert ys[0] == ys[2] and len({ys[0], ys[1], ys[3]}) == 3
    assert context_figures._seeds(pd.Series([5, 5, 5])) == "5"  # not "up to 5"
    assert context_figures._seeds(pd.Series([3, 5])) == "3–5"


# -- the registry: every figure once ----------------------------------------------------------
def test_every_registered_figure_is_drawn_by_its_module_and_has_a_caption():
    from rnnbench.figures.registry import FIGURES, SOURCES

    root = Path(__file__).resolve().parents[1]
    for figure in FIGURES:
        draw = drawer(figure.name)
        assert draw.__module__ == f"rnnbench.figures.{figure.module}", figure
        assert figure.source in SOURCES, figure
        assert (root / "workflow/report" / f"{figure.name}.rst").exists(), figure
    assert len({f.name for f in FIGURES}) == len(FIGURES)
    with pytest.raises(ValueError, match="unknown figure 'perplexity'"):
        drawer("perplexity")


def test_every_figure_rule_draws_through_the_one_figure_command():
    import re

    root = Path(__file__).resolve().parents[1]
    commands = [m for path in sorted((root / "workflow/rules").glob("*.smk"))
                for m in re.findall(r"python -m (rnnbench\.figures\.\w+)", path.read_text())]
    assert commands and set(commands) == {"rnnbench.figures.draw"}, commands
