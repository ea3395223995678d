"""Aggregation: summary statistics over seeds, diverged runs, the markdown table."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnbench.analysis.aggregate import aggregate, summarize, summary_markdown
from rnnbench.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


def runs_frame() -> pd.DataFrame:
    rows = []
    for cell, ppls in {"lstm": [100.0, 110.0, 120.0], "rnn_tanh": [150.0, 160.0, math.nan]}.items():
        for seed, ppl in enumerate(ppls, 1):
            rows.append({"corpus": "ptb", "experiment": "g", "run_id": f"{cell}-s{seed}",
                         "cell": cell, "hidden": 10, "layers": 1, "seed": seed, "lr": 1.0,
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
    assert "| ptb | g | lstm | 10 | 1 | 1,000 | 3 | 110.0 ± 10.0 |" in text
    assert "| 2 (1 diverged) | 155.0 ± 7.1 |" in text
    assert "mean ± sample sd over the n seeds that finished." in text


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


def train_run(data: Path, run: Path, *, seed: int = 1, lr: float = 1.0,
              flags: tuple[str, ...] = ()) -> Path:
    """Train and evaluate one tiny run (one epoch, rnn_relu h8) into ``run``; return it."""
    from rnnbench.diagnostics.evaluate import main as evaluate_main
    from rnnbench.training.train import main as train_main

    argv = ["--cell", "rnn_relu", "--hidden", "8", "--epochs", "1", "--seed", str(seed),
            "--lr", str(lr), "--grad", "none", "--batch-size", "4", "--bptt", "10",
            "--device", "cpu", "--threads", "1", "--data-dir", str(data), "--run-dir",
            str(run), "--run-id", run.name, "--checkpoint", str(run.parent / f"{run.name}.pt"),
            *flags]
    assert train_main(argv) == 0
    eval_flags = ["--stream-test"] if "--max-eval-batches" not in flags else []
    assert evaluate_main(["--run-dir", str(run), "--data-dir", str(data), "--out",
                          str(run / "eval.json"), "--device", "cpu", *eval_flags]) == 0
    return run


@pytest.fixture(scope="module")
def tiny_runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """Two ok seeds, two seeds forced to diverge (lr 1e30, no gradient treatment), one capped."""
    root = tmp_path_factory.mktemp("runs")
    runs = {f"ok{s}": train_run(tiny_data, root / "g" / f"ok-s{s}", seed=s) for s in (1, 2)}
    runs |= {f"div{s}": train_run(tiny_data, root / "d" / f"div-s{s}", seed=s, lr=1e30)
             for s in (1, 2)}
    runs["capped"] = train_run(tiny_data, root / "c" / "capped-s1",
                               flags=("--max-eval-batches", "2"))
    return runs


def edit_json(path: Path, **changes) -> None:
    """Change some keys of a JSON file (a run folder written by hand from a real one)."""
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def copy_run(src: Path, dest: Path, **train_changes) -> Path:
    """A copy of a real run folder with some train.json keys changed."""
    shutil.copytree(src, dest)
    edit_json(dest / "train.json", **train_changes)
    return dest


def test_seeds_that_differ_only_in_provenance_form_one_configuration(tiny_runs, tmp_path):
    # the two seeds finished on different commits and hosts, and each scored its own
    # test-as-one-stream perplexity: none of that is configuration
    edit_json(tiny_runs["ok1"] / "train.json", code_version="a" * 40, hostname="one")
    edit_json(tiny_runs["ok2"] / "train.json", code_version="b" * 40 + "+dirty", hostname="two")
    runs = aggregate([tiny_runs["ok1"], tiny_runs["ok2"]], tmp_path)
    assert runs["test_stream_ppl"].nunique() == 2 and runs["code_version"].nunique() == 2
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "n"] == 2
    assert summary.loc[0, "test_ppl_mean"] == pytest.approx(runs["test_ppl"].mean())
    # a provenance column added later cannot split it either
    assert len(summarize(runs.assign(new_provenance=["x", "y"]))) == 1


def test_every_published_run_has_every_field_its_readers_need():
    # results/reference was migrated once: no reader fills in defaults for old files
    from rnnbench.analysis.aggregate import run_record

    dirs = [p.parent for p in sorted((ROOT / "results/reference").glob("*/*/eval.json"))]
    if not dirs:
        pytest.skip("no committed reference runs")
    rows = pd.DataFrame([run_record(d) for d in dirs])
    assert rows["recurrent_params"].notna().all() and (rows["corpus"] == "ptb").all()
    ok = rows[rows["status"] == "ok"]
    assert ok["valid_tokens_total"].notna().all() and ok["test_ppl"].notna().all()


def test_a_train_json_without_a_config_field_stops_naming_the_file(tiny_runs, tmp_path):
    run = copy_run(tiny_runs["ok1"], tmp_path / "old" / "ok-s1")
    meta = json.loads((run / "train.json").read_text())
    del meta["config"]["budget_kind"]
    (run / "train.json").write_text(json.dumps(meta))
    from rnnbench.analysis.aggregate import run_record

    with pytest.raises(ValueError, match=r"train\.json: its config has no budget_kind"):
        run_record(run)


def test_committed_reference_seeds_are_one_row_each():
    dirs = sorted((ROOT / "results/reference/zaremba_small").glob("*/train.json"))
    if len(dirs) < 2:
        pytest.skip("no committed reference runs")
    from rnnbench.analysis.aggregate import run_record

    summary = summarize(pd.DataFrame([run_record(p.parent) for p in dirs]))
    assert len(summary) == 1 and summary.loc[0, "n"] == len(dirs)


def test_runs_of_two_corpora_are_never_one_group(tiny_runs, tmp_path):
    ptb = copy_run(tiny_runs["ok1"], tmp_path / "g" / "a", corpus="ptb")
    wiki = copy_run(tiny_runs["ok2"], tmp_path / "g" / "b", corpus="wiki")
    runs = aggregate([ptb, wiki], tmp_path / "tables")
    assert list(runs["corpus"]) == ["ptb", "wiki"]
    summary = pd.read_csv(tmp_path / "tables/summary.csv")
    assert list(summary["corpus"]) == ["ptb", "wiki"] and list(summary["n"]) == [1, 1]
    assert "| wiki | g | rnn_relu |" in (tmp_path / "tables/summary.md").read_text()


def test_a_config_whose_every_run_diverged_still_gets_every_table(tiny_runs, tmp_path):
    out = tmp_path / "tables"
    runs = aggregate([tiny_runs["div1"], tiny_runs["div2"]], out)
    assert (runs["status"] == "diverged").all() and runs["test_ppl"].isna().all()
    for name in ("runs.csv", "summary.csv", "summary.md", "summary.html", "epochs.csv",
                 "grad_norms.csv"):
        assert (out / name).exists(), name
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    row = summary.iloc[0]
    assert (row["n"], row["n_runs"], row["n_diverged"]) == (0, 2, 2)
    steps = sorted(int(s) for s in runs["diverged_step"])
    assert str(row["diverged_steps"]) == ", ".join(map(str, steps))
    # no ok run: the perplexity cells are empty, neither 0 nor 1.0
    for col in ("test_ppl_mean", "valid_ppl_mean", "train_ppl_mean", "seconds_per_epoch_mean"):
        assert row[col] == "", col
    assert row["params"] == runs["params"].iloc[0]  # known without a finished run
    unique = sorted(set(steps))  # both may stop at the same step: said once
    shown = f"diverged (step{'s' if len(unique) > 1 else ''} {', '.join(map(str, unique))})"
    md = (out / "summary.md").read_text()
    assert f"| 0 (2 diverged) | {shown} | {shown} |" in md
    assert "nan" not in md.lower() and "± " not in md.split("\n\n")[0]
    assert f"<td>{shown}</td>" in (out / "summary.html").read_text()


def test_diverged_seeds_are_counted_beside_the_finished_ones(tiny_runs, tmp_path):
    # a seed of the ok configuration that diverged: the real diverged folder, its lr set
    # to the ok runs' so that only the outcome differs
    lost = copy_run(tiny_runs["div1"], tmp_path / "g" / "ok-s3",
                    config={**json.loads((tiny_runs["ok1"] / "train.json").read_text())["config"],
                            "seed": 3})
    runs = aggregate([tiny_runs["ok1"], tiny_runs["ok2"], lost], tmp_path / "tables")
    summary = pd.read_csv(tmp_path / "tables/summary.csv")
    assert len(summary) == 1
    row = summary.iloc[0]
    assert (row["n"], row["n_runs"], row["n_diverged"]) == (2, 3, 1)
    ok = runs[runs["status"] == "ok"]
    assert row["test_ppl_mean"] == pytest.approx(ok["test_ppl"].mean())
    assert row["test_ppl_sd"] == pytest.approx(ok["test_ppl"].std(ddof=1))
    step = int(runs.loc[runs["status"] == "diverged", "diverged_step"].iloc[0])
    md = (tmp_path / "tables/summary.md").read_text()
    assert f"| 2 (1 diverged, step {step}) | " in md


def test_capped_evaluations_are_marked_with_the_tokens_scored(tiny_runs, tmp_path):
    capped, full = tiny_runs["capped"], tiny_runs["ok1"]
    ev = json.loads((capped / "eval.json").read_text())
    assert ev["eval_capped"] is True and ev["test_tokens"] == 2 * 10 * 4
    runs = aggregate([capped, full], tmp_path / "new").set_index("run_id")
    assert bool(runs.loc[capped.name, "eval_capped"]) and not runs.loc[full.name, "eval_capped"]
    assert runs.loc[capped.name, "test_token_share"] == pytest.approx(
        80 / ev["test_tokens_total"])
    assert runs.loc[full.name, "test_token_share"] == 1.0
    md = (tmp_path / "new/summary.md").read_text()
    note = (f"† evaluated on 80 of {ev['valid_tokens_total']} valid and 80 of "
            f"{ev['test_tokens_total']} test tokens only (max_eval_batches: 2)")
    assert note in md and md.count(" †") == 2  # test and valid ppl of the capped row only
    assert "evaluated on" in (tmp_path / "new/summary.html").read_text()


def test_one_run_tables_say_no_spread_and_no_mean_sd(tiny_runs, tmp_path):
    aggregate([tiny_runs["ok1"]], tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "±" not in md and "One seed per configuration" in md
    assert pd.read_csv(tmp_path / "summary.csv")["test_ppl_sd"].isna().all()


def test_readable_table_shows_a_grid_axis_beyond_cell_and_size():
    frame = runs_frame()
    frame.loc[frame["cell"] == "lstm", "lr"] = 20.0
    frame["cell"] = "lstm"
    text = summary_markdown(summarize(frame))
    assert "| layers | lr | params |" in text
    assert "| 10 | 1 | 20 | 1,000 |" in text and "| 10 | 1 | 1 | 1,000 |" in text


def test_grad_decay_table_is_rounded_with_spread_only_over_several_seeds(tmp_path):
    from rnnbench.analysis.tables import main as tables_main

    rows = []
    for seed, rate in ((1, -0.5), (2, -0.3)):
        for kind, shift in (("trained", 0.0), ("init", -0.1)):
            rows.append({"experiment": "g", "run_id": f"lstm-s{seed}", "cell": "lstm",
                         "hidden": 32, "layers": 1, "seed": seed, "kind": kind, "layer": 0,
                         "state": "h", "decay_rate": rate + shift, "min_lag": 1,
                         "max_lag": 100, "lags_fitted": 100})
    rows.append({**rows[0], "run_id": "gru-s1", "cell": "gru", "decay_rate": -0.123456})
    pd.DataFrame(rows).to_csv(tmp_path / "grad_decay.csv", index=False)
    assert tables_main(["grad_decay", str(tmp_path / "grad_decay.csv"), "--out",
                        str(tmp_path / "d.md")]) == 0
    md = (tmp_path / "d.md").read_text()
    assert f"| g | lstm | 32 | 1 | 0 | 2 | -0.400 ± 0.141 | {math.exp(-0.4):.3f} | " in md
    assert "| g | gru | 32 | 1 | 0 | 1 | -0.123 | 0.884 | – | – | 100 |" in md
    assert "mean ± sample sd over the n seeds that finished; where n = 1" in md
    assert tables_main(["grad_decay", str(tmp_path / "grad_decay.csv"), "--out",
                        str(tmp_path / "d.html")]) == 0
    assert "<td>-0.400 ± 0.141</td>" in (tmp_path / "d.html").read_text()


def test_summary_gives_the_95_ci_of_the_mean_over_seeds():
    from rnnbench.analysis.aggregate import summarize

    runs = pd.DataFrame({"corpus": "ptb", "experiment": "e", "cell": "lstm", "hidden": 8,
                         "layers": 1, "seed": [1, 2, 3, 4], "params": 100,
                         "status": ["ok", "ok", "ok", "diverged"],
                         "diverged_step": [None, None, None, 17],
                         "test_ppl": [100.0, 102.0, 104.0, float("nan")],
                         "valid_ppl": [110.0, 110.0, 110.0, float("nan")]})
    row = summarize(runs).iloc[0]
    half = 4.302652729 * 2 / 3 ** 0.5  # t(0.975, 2) x sd 2 / sqrt(3): the diverged seed is out
    assert row["n"] == 3 and row["test_ppl_ci_low"] == pytest.approx(102 - half, rel=1e-8)
    assert row["test_ppl_ci_high"] == pytest.approx(102 + half, rel=1e-8)
    assert row["valid_ppl_ci_low"] == row["valid_ppl_ci_high"] == 110.0


def test_every_table_names_the_model_and_the_summary_keeps_variants_apart(tiny_runs, tmp_path):
    # the same rnn_relu run, once as the IRNN variant (run id and config as the grid writes them)
    root = tmp_path / "runs" / "g"
    plain = copy_run(tiny_runs["ok1"], root / "rnn_relu-h8-l1-s1", run_id="rnn_relu-h8-l1-s1")
    irnn = copy_run(tiny_runs["ok1"], root / "rnn_relu-h8-l1-irnn1-s1",
                    run_id="rnn_relu-h8-l1-irnn1-s1")
    meta = json.loads((irnn / "train.json").read_text())
    edit_json(irnn / "train.json", config={**meta["config"], "irnn": 1.0})
    runs = aggregate([plain, irnn], tmp_path / "tables")
    assert runs["model"].tolist() == ["rnn_relu", "irnn"]
    for name in ("epochs.csv", "grad_norms.csv"):
        table = pd.read_csv(tmp_path / "tables" / name)
        assert set(table.groupby("run_id")["model"].first().items()) == {
            ("rnn_relu-h8-l1-s1", "rnn_relu"), ("rnn_relu-h8-l1-irnn1-s1", "irnn")}, name
    summary = pd.read_csv(tmp_path / "tables/summary.csv")
    assert summary["model"].tolist() == ["rnn_relu", "irnn"] and summary["n"].tolist() == [1, 1]


def test_the_long_tables_say_what_a_budget_counts(tiny_runs, tmp_path):
    # a 4M total budget is "t4M" in every figure's panel, as in comparisons.md: the per-epoch
    # and per-step tables carry the kind beside the budget
    run = copy_run(tiny_runs["ok1"], tmp_path / "runs" / "g" / "lstm-t4M-l1-s1",
                   run_id="lstm-t4M-l1-s1")
    meta = json.loads((run / "train.json").read_text())
    edit_json(run / "train.json",
              config={**meta["config"], "budget": 4_000_000, "budget_kind": "total"})
    aggregate([run], tmp_path / "tables")
    for name in ("epochs.csv", "grad_norms.csv"):
        table = pd.read_csv(tmp_path / "tables" / name)
        assert set(table["budget_kind"]) == {"total"} and set(table["budget"]) == {4_000_000}
