"""Publish reference runs: copy their small files to results/reference/ and build the table.

Per run, ``results/reference/{experiment}/{run}/`` keeps ``train.json``, ``eval.json``,
``history.csv``, ``grad_stats.csv``, ``spectra.csv`` (and the gradient-through-time and
effective-context files when present) plus ``grad_bins.csv`` and ``grad_quantiles.csv``, the
per-step gradient norms reduced to bins over training and to quantiles (the per-step file and
the weights are not published).
``reference.csv`` and ``reference.md`` compare each experiment with its published number, and
``{experiment}/provenance.json`` names the commit(s) its runs were trained from. A run trained
from a working tree with uncommitted changes to the training code (``src/``; train.json's
``code_changes``), or from no git checkout, is refused before anything is copied, unless
``--allow-dirty`` (or ``RNNBENCH_PUBLISH_DIRTY=1``) is given, which provenance.json records.
The pipeline publishes in two steps, so that each run is published as soon as it has
finished (a long experiment commits its runs as they come): ``--copy-only`` checks and copies
one run, and ``--no-copy`` writes provenance.json and the tables from the published copies of
every run. Usage::

    python -m rnnbench.analysis.publish --out results/reference --published '{"seed_rnn": {...}}' \\
        results/runs/seed_rnn/rnn_tanh-h150-l1-s1 ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from rnnbench.analysis.aggregate import grad_bins, run_record
from rnnbench.analysis.gradtables import step_quantiles
from rnnbench.analysis.render import Table, markdown
from rnnbench.analysis.tables import capped_note, footnote_mark
from rnnbench.experiment.tuning import TRIAL_FILES
from rnnbench.io import atomic_dir, read_json, write_csv, write_json, write_text
from rnnbench.training.provenance import unpublishable

log = logging.getLogger(__name__)
FILES = ("train.json", "eval.json", "history.csv", "grad_stats.csv", "spectra.csv")
OPTIONAL = ("gradients.csv", "decay.csv", "gradients.json", "context.csv", "context.json")
ALLOW_DIRTY_ENV = "RNNBENCH_PUBLISH_DIRTY"  # "1": publish runs of uncommitted code, recorded


def check_provenance(run_dirs: list[Path], override: str | None) -> dict[Path, str]:
    """Each run whose train.json does not name the code that trained it, with why; a
    SystemExit paragraph naming them unless ``override`` (how the user allowed it) is set."""
    problems = {d: why for d in run_dirs if (why := unpublishable(read_json(d / "train.json")))}
    if problems and not override:
        shown = "; ".join(f"{d.parent.name}/{d.name}: {why}" for d, why in
                          list(problems.items())[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise SystemExit(
            f"cannot publish: {len(problems)} of {len(run_dirs)} runs were not trained from a "
            f"commit that holds their training code: {shown}{more}. A reviewer could not check "
            "out the code behind their numbers, so nothing was published. Commit the changes "
            "and retrain those runs from a clean checkout (best a separate `git worktree` at "
            "one commit, so that work on main never changes the code under a running job), or "
            f"publish them anyway with {ALLOW_DIRTY_ENV}=1 (python -m rnnbench.analysis.publish "
            "--allow-dirty), which results/reference/<experiment>/provenance.json records.")
    return problems


def provenance_record(run_dirs: list[Path], problems: dict[Path, str],
                      override: str | None) -> dict[str, dict]:
    """Per experiment: the commit(s) its runs were trained from (with their runs), the runs
    published despite uncommitted training code and why, and the override that allowed it."""
    records: dict[str, dict] = {}
    for d in run_dirs:
        meta = read_json(d / "train.json")
        rec = records.setdefault(d.parent.name, {"experiment": d.parent.name, "commits": {},
                                                 "uncommitted_code": {}, "override": None})
        rec["commits"].setdefault(str(meta.get("code_version")), []).append(d.name)
        if d in problems:
            rec["uncommitted_code"][d.name] = {
                "why": problems[d], "code_changes": meta.get("code_changes"),
                "code_sha256": meta.get("code_sha256")}
            rec["override"] = override
    return records


def copy_trial(run_dir: Path, dest: Path) -> None:
    """Copy one tuning trial's train.json and history.csv (all that its rung's selection
    reads) as one folder, atomically (rnnbench.io.atomic_dir)."""
    with atomic_dir(dest) as tmp:
        for name in TRIAL_FILES:
            shutil.copyfile(run_dir / name, tmp / name)


def copy_run(run_dir: Path, dest: Path) -> None:
    """Copy one run's small files and write its grad_bins.csv and grad_quantiles.csv, as one
    folder, atomically: a killed publish leaves the old copy or none, never half of one."""
    with atomic_dir(dest) as tmp:
        for name in FILES + tuple(n for n in OPTIONAL if (run_dir / n).exists()):
            shutil.copyfile(run_dir / name, tmp / name)
        write_csv(grad_bins(run_dir), tmp / "grad_bins.csv")
        write_csv(step_quantiles(run_dir), tmp / "grad_quantiles.csv")


def reference_table(runs: pd.DataFrame, published: dict) -> pd.DataFrame:
    """One row per experiment with a published number: it against ours (mean, sd, n)."""
    rows = []
    keys = ["corpus", "experiment"] if "corpus" in runs else ["experiment"]
    for key, block in runs.groupby(keys, sort=False):
        experiment = key[-1]
        ok = block[block["status"] == "ok"]
        pub = published.get(experiment)
        if not pub:
            continue
        # n = 1 has no spread, n = 0 no mean: NaN, never a number (rendered as a dash)
        mean, sd = ok["test_ppl"].mean(), ok["test_ppl"].std(ddof=1)
        gpu = block["gpu"].dropna()
        device = gpu.iloc[0] if len(gpu) else f"CPU ({block['cpu'].iloc[0]})"
        versions = block.get("code_version", pd.Series(dtype=object)).dropna()
        rows.append({
            **({"corpus": key[0]} if len(keys) > 1 else {}),
            "experiment": experiment,
            "published_test_ppl": pub["test_ppl"],
            "published_source": pub.get("source"),
            "test_ppl_mean": mean, "test_ppl_sd": sd, "n": len(ok), "n_runs": len(block),
            "valid_ppl_mean": ok["valid_ppl"].mean(), "train_ppl_mean": ok["train_ppl"].mean(),
            # the test set as one stream (batch 1), where the experiment asked for it
            "test_stream_ppl_mean": ok.get("test_stream_ppl", pd.Series(dtype=float)).mean(),
            "delta_pct": 100 * (mean / pub["test_ppl"] - 1),
            "device": device, "torch": block["torch"].iloc[0],
            "code_version": ", ".join(sorted({v[:7] + ("+dirty" if v.endswith("+dirty") else "")
                                              for v in versions})),
            "seconds_per_epoch": ok["seconds_per_epoch"].mean(),
            "published_seconds_per_epoch": pub.get("seconds_per_epoch"),
            "published_device": pub.get("device"),
            **_coverage(ok, block),
        })
    return pd.DataFrame(rows)


def _coverage(ok: pd.DataFrame, block: pd.DataFrame) -> dict:
    """Whether the ok runs' evaluation was capped (max_eval_batches), and the tokens scored."""
    if "eval_capped" not in ok:  # a table of runs from before capping was recorded
        return {}
    out = {"eval_capped": bool(ok["eval_capped"].eq(True).any()),
           "max_eval_batches": block.get("max_eval_batches", pd.Series(dtype=float)).max()}
    for key in ("valid_tokens", "valid_tokens_total", "test_tokens", "test_tokens_total"):
        out[key] = ok[key].max() if key in ok else float("nan")
    return out


def _num(value: float, fmt: str = ".1f") -> str:
    """A number, or a dash for NaN (no finished run)."""
    return "–" if pd.isna(value) else format(value, fmt)


def _ours(r: pd.Series) -> str:
    """Our test perplexity: mean ± sd over n > 1 seeds, the one value, or all diverged."""
    if r["n"] > 1:
        return f"{r['test_ppl_mean']:.1f} ± {r['test_ppl_sd']:.1f}"
    return _num(r["test_ppl_mean"]) if r["n"] == 1 else f"all {r['n_runs']} diverged"


def reference_markdown(table: pd.DataFrame) -> str:
    """The reference table of docs/results.md (a capped evaluation is marked, with a footnote)."""
    out = Table(["experiment", "published test ppl", "ours: test ppl (mean ± sd, n)", "Δ%",
                 "ours: test ppl, test set as one stream", "ours: valid / train ppl",
                 "device (torch, code)", "s/epoch: ours (published)"])
    corpora = table["corpus"].nunique() if "corpus" in table else 1
    marks: dict[str, str] = {}
    for _, r in table.iterrows():
        pub_s = (f" ({r['published_seconds_per_epoch']:.1f}, {r['published_device']})"
                 if pd.notna(r["published_seconds_per_epoch"]) else "")
        code = f", {r['code_version']}" if r["code_version"] else ""
        note = capped_note(r)
        mark = "" if note is None else " " + marks.setdefault(note, footnote_mark(len(marks)))
        stream = r["test_stream_ppl_mean"]
        name = f"{r['corpus']}/{r['experiment']}" if corpora > 1 else r["experiment"]
        out.rows.append([
            name, f"{r['published_test_ppl']:.1f}", f"{_ours(r)}{mark} (n={r['n']})",
            _num(r["delta_pct"], "+.1f"), f"{_num(stream)}{mark if pd.notna(stream) else ''}",
            f"{_num(r['valid_ppl_mean'])} / {_num(r['train_ppl_mean'])}",
            f"{r['device']} ({r['torch']}{code})", f"{_num(r['seconds_per_epoch'])}{pub_s}"])
    out.notes = [f"{mark} {note}." for note, mark in marks.items()]
    return markdown(out)


def publish(run_dirs: list[Path], out: Path, published: dict, allow_dirty: str | None = None,
            copy: bool = True, record: bool = True, trials: bool = False) -> pd.DataFrame:
    """Check every run's code (``allow_dirty``: how the user overrode a refusal), copy every
    run (``copy``; tuning ``trials`` to {experiment}/trials/, their train.json and history.csv
    only), write each experiment's provenance.json, reference.csv and reference.md
    (``record``); the table (empty without ``record``)."""
    problems = check_provenance(run_dirs, allow_dirty)
    if copy:
        for run_dir in run_dirs:
            if trials:
                copy_trial(run_dir, out / run_dir.parent.name / "trials" / run_dir.name)
            else:
                copy_run(run_dir, out / run_dir.parent.name / run_dir.name)
    if not record:
        return pd.DataFrame()
    for experiment, entry in provenance_record(run_dirs, problems, allow_dirty).items():
        write_json(out / experiment / "provenance.json", entry)
    runs = pd.DataFrame([run_record(d) for d in run_dirs])
    table = reference_table(runs, published)
    if published:  # a comparison table only where there are published numbers
        write_csv(table, out / "reference.csv")
        write_text(out / "reference.md", reference_markdown(table))
    return table


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--published", default="{}", help="JSON: experiment -> published")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="publish runs trained from uncommitted training code (recorded in "
                        f"provenance.json); also ${ALLOW_DIRTY_ENV}=1")
    step = parser.add_mutually_exclusive_group()
    step.add_argument("--copy-only", action="store_true",
                      help="check and copy the runs; no provenance.json, no tables")
    step.add_argument("--no-copy", action="store_true",
                      help="the runs are published copies: write provenance.json and the "
                      "tables from them")
    parser.add_argument("--trials", action="store_true",
                        help="the runs are tuning trials: copy their train.json and history.csv "
                        "to OUT/{experiment}/trials/{run}/ (with --copy-only)")
    args = parser.parse_args(argv)
    if args.trials and not args.copy_only:
        parser.error("--trials publishes copies only: add --copy-only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    allow = ("--allow-dirty" if args.allow_dirty else
             f"{ALLOW_DIRTY_ENV}=1" if os.environ.get(ALLOW_DIRTY_ENV) == "1" else None)
    publish(args.runs, args.out, json.loads(args.published), allow, copy=not args.no_copy,
            record=not args.copy_only, trials=args.trials)
    log.info("published %d runs to %s", len(args.runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
