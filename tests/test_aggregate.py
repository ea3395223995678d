"""Aggregation: summary statistics over seeds, diverged runs, the markdown table."""

import math

import numpy as np
import pandas as pd
import pytest

from rnnbench.aggregate import summarize, summary_markdown
from rnnbench.io import write_json, write_text


def runs_frame() -> pd.DataFrame:
    rows = []
    for cell, ppls in {"lstm": [100.0, 110.0, 120.0], "rnn_tanh": [150.0, 160.0, math.nan]}.items():
        for seed, ppl in enumerate(ppls, 1):
            rows.append({"experiment": "g", "run_id": f"{cell}-s{seed}", "cell": cell,
                         "hidden": 10, "layers": 1, "seed": seed, "lr": 1.0,
                         "embedding_size": np.nan,
                         "status": "diverged" if math.isnan(ppl) else "ok",
                         "test_ppl": ppl, "valid_ppl": ppl + 5, "train_ppl": ppl - 5,
                         "params": 1000, "seconds_per_epoch": 2.0, "tokens_per_s": 10.0,
                         "device": "cpu", "diverged_step": np.nan})
    return pd.DataFrame(rows)


def test_summary_is_mean_and_sample_sd_over_ok_seeds():
    summary = summarize(runs_frame()).set_index("cell")
    assert summary.loc["lstm", "test_ppl_mean"] == pytest.approx(110.0)
    assert summary.loc["lstm", "test_ppl_sd"] == pytest.approx(10.0)
    assert summary.loc["lstm", "n"] == 3
    assert summary.loc["rnn_tanh", "n"] == 2 and summary.loc["rnn_tanh", "n_diverged"] == 1
    assert summary.loc["rnn_tanh", "test_ppl_mean"] == pytest.approx(155.0)
    assert list(summary.index) == ["rnn_tanh", "lstm"]  # cells in benchmark order


def test_summary_markdown_shows_mean_sd_and_diverged_count():
    text = summary_markdown(summarize(runs_frame()))
    assert "| g | lstm | 10 | 1 | 3 | 110.0 ± 10.0 |" in text
    assert "| 2 (1 diverged) | 155.0 ± 7.1 |" in text


def test_atomic_writes_leave_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    write_text(tmp_path / "t.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "t.txt"]


def test_atomic_writes_get_the_usual_file_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    os.umask(old)
    write_text(tmp_path / "t.txt", "x")
    mode = stat.S_IMODE((tmp_path / "t.txt").stat().st_mode)
    assert mode == 0o666 & ~old


def test_per_epoch_figures_get_one_panel_per_experiment_and_size_none_empty():
    from rnnbench.plots import _model_panels

    one = pd.DataFrame({"experiment": ["grid"] * 4, "hidden": [150, 150, 300, 300],
                        "layers": [1, 2, 1, 2]})
    assert _model_panels(one)[1] == {"col": "hidden", "row": "layers"}
    several = pd.DataFrame({"experiment": ["seed_rnn", "seed_lstm", "seed_lstm", "zaremba"],
                            "hidden": [150, 300, 300, 200], "layers": [1, 1, 1, 2]})
    df, facets = _model_panels(several)
    assert facets["col"] == "panel" and "row" not in facets
    assert facets["col_order"] == ["seed_rnn: hidden 150, layers 1",
                                   "seed_lstm: hidden 300, layers 1",
                                   "zaremba: hidden 200, layers 2"]
    assert facets["col_wrap"] == 3 and set(df["panel"]) == set(facets["col_order"])
