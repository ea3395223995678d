"""The snakemake commands of README.md, docs/*.md and the Snakefile header run as written on a
clean clone.

Each command is dry-run (``-n``) in a fresh copy of the repository's files, with the PTB
mirror added to its ``--config``; a command that Snakemake cannot parse (a target after
``--config``, which takes every following word as a ``key=value``) fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _commands_of_line(line: str) -> list[list[str]]:
    """The snakemake commands of one shell line (``a && b`` is two), env assignments first."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    found, current = [], []
    for word in [*words, "&&"]:
        if word not in ("&&", ";", "||"):
            current.append(word)
            continue
        start = next((i for i, w in enumerate(current) if not ENV_ASSIGNMENT.match(w)),
                     len(current))
        if current[start : start + 1] == ["snakemake"] and len(current) > start + 1:
            found.append(current)
        current = []
    return found


def commands(text: str) -> list[list[str]]:
    """Snakemake commands of a Markdown text, in order: bash-block lines and inline spans."""
    found = []
    # Fenced blocks (bash ones hold commands, one a line), then inline spans of the prose,
    # which may wrap onto a second line.
    pattern = re.compile(r"```(\w*)\n(.*?)```|`([^`\n]+(?:\n[^`\n]+)?)`", re.S)
    for match in pattern.finditer(text):
        language, block, span = match.groups()
        if span is not None:
            found += _commands_of_line(" ".join(span.split()))
        elif language == "bash":
            for line in block.splitlines():
                found += _commands_of_line(line)
    return found


def header_commands(snakefile: Path) -> list[list[str]]:
    """Snakemake commands of the Snakefile's header comment."""
    found = []
    for line in snakefile.read_text().splitlines():
        if not line.startswith("#"):
            break
        # The header writes a command, then its description after two or more spaces.
        found += _commands_of_line(re.split(r"\s{2,}", line.lstrip("# "))[0])
    # `--cores N` stands for a number.
    return [[("2" if w == "N" and c[i - 1] == "--cores" else w) for i, w in enumerate(c)]
            for c in found]


def option(words: list[str], name: str) -> str | None:
    """The value after ``name`` in ``words`` (None without it)."""
    return words[words.index(name) + 1] if name in words[:-1] else None


def dry_run_args(words: list[str], mirror: Path) -> tuple[dict[str, str], list[str]]:
    """Environment and Snakemake arguments that dry-run ``words`` with the mirror added."""
    start = words.index("snakemake")
    env = dict(w.split("=", 1) for w in words[:start])
    args = words[start + 1 :]
    if "--report" in args:  # the report needs finished runs; the rest of the line must parse
        i = args.index("--report")
        del args[i : i + 2]
    if "--config" in args:
        i = args.index("--config")
        end = next((j for j in range(i + 1, len(args)) if args[j].startswith("-")), len(args))
        values = [v for v in args[i + 1 : end] if not v.startswith("mirror=")]
        # Inserted first: a target after --config stays among its values, as in the README.
        args[i + 1 : end] = [f"mirror={mirror}", *values]
    else:
        args += ["--config", f"mirror={mirror}"]
    return env, ["-n", *args]


PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
PAGE_COMMANDS = {page: commands((ROOT / page).read_text()) for page in PAGES}
README_COMMANDS = PAGE_COMMANDS["README.md"]
HEADER_COMMANDS = header_commands(ROOT / "Snakefile")
ALL = {" ".join(c): c for c in [*sum(PAGE_COMMANDS.values(), []), *HEADER_COMMANDS]}


def run_dry(words: list[str], clone: Path, mirror: Path) -> subprocess.CompletedProcess:
    """Dry-run one command in ``clone`` (a ``-n`` the command has is the one added)."""
    env, args = dry_run_args(words, mirror)
    args = ["-n", *[a for a in args[1:] if a not in ("-n", "--dry-run")]]
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=clone,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_readme_and_header_have_the_commands_a_user_runs():
    texts = {" ".join(c) for c in README_COMMANDS}
    assert len(README_COMMANDS) >= 6 and len(HEADER_COMMANDS) >= 4
    for expected in ("snakemake --cores 2 --configfile config/quick.yaml"
                     " --config mirror=../shared/data/ptb",
                     "snakemake --configfile config/quick.yaml --report results/report.html",
                     "snakemake --cores all",
                     "snakemake --cores 1 --configfile config/converged.yaml"
                     " --config source=reference",
                     "snakemake --workflow-profile workflow/profiles/slurm"):
        assert expected in texts


def test_every_docs_page_is_read_for_commands():
    # The pages that document commands: a page renamed or emptied would silently drop them.
    for page in ("docs/results.md", "docs/cluster.md", "docs/extending.md"):
        assert PAGE_COMMANDS.get(page), f"{page}: no snakemake command found"


def dry_run_key(words: list[str]) -> tuple:
    """What a dry run of ``words`` runs: two commands with the same key are one dry run (a
    ``-n`` written in the command is the one the check adds)."""
    env, args = dry_run_args(words, Path("MIRROR"))
    return tuple(sorted(env.items())), tuple(a for a in args if a not in ("-n", "--dry-run"))


DRY_RUNS: dict[tuple, list[list[str]]] = {}  # one dry run -> the commands it checks
for _words in ALL.values():
    DRY_RUNS.setdefault(dry_run_key(_words), []).append(_words)


@pytest.mark.parametrize("same", list(DRY_RUNS.values()),
                         ids=[" ".join(c[0]) for c in DRY_RUNS.values()])
def test_command_parses_as_a_dry_run_on_a_clean_clone(same, clean_clone, ptb_mirror):
    words = same[0]
    profile = option(words, "--workflow-profile") or ""
    if "slurm" in profile and importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM profile needs `pip install -e .[slurm]`")
    result = run_dry(words, clean_clone, ptb_mirror)
    shown = "; ".join(" ".join(c) for c in same)
    assert result.returncode == 0, f"{shown}\n{(result.stdout + result.stderr)[-3000:]}"


def test_a_target_after_config_fails_the_check(clean_clone, ptb_mirror):
    good = ["snakemake", "results/data/ptb/stats.json", "--cores", "1", "--config",
            "mirror=/data/ptb"]
    assert run_dry(good, clean_clone, ptb_mirror).returncode == 0
    bad = ["snakemake", "--cores", "1", "--config", "mirror=/data/ptb",
           "results/data/ptb/stats.json"]
    assert run_dry(bad, clean_clone, ptb_mirror).returncode != 0


@pytest.mark.parametrize("source", [*PAGES, "Snakefile"])
def test_every_report_command_names_the_configfile_of_the_run_before_it(source):
    found = HEADER_COMMANDS if source == "Snakefile" else PAGE_COMMANDS[source]
    last_run = None
    for words in found:
        if "--report" not in words:
            last_run = words
            continue
        assert last_run is not None, f"{source}: a --report command before any run"
        assert option(words, "--configfile") == option(last_run, "--configfile"), (
            f"{source}: `{' '.join(words)}` reports another config than the run before it, "
            f"`{' '.join(last_run)}`")


def test_install_declares_what_the_report_needs():
    # `snakemake --report` stops with "Python package pygments must be installed".
    pyproject = (ROOT / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert re.search(r'"pygments[<>=!~ ,0-9.]*"', dependencies)
    assert re.search(r"^\s*- pygments\b", (ROOT / "environment.yml").read_text(), re.M)


@pytest.mark.xdist_group("converged")
def test_the_headline_rebuilds_from_the_committed_files_on_a_clean_clone(converged_rebuilt):
    """The README's answer, run for real (no dry run): on a clean clone, with no corpus and no
    training, `source=reference` rebuilds the converged experiment's tables and figures, and its
    comparison table is the README's headline block (conftest.converged_rebuilt)."""
    clone, result = converged_rebuilt
    assert "train_model" not in result.stdout + result.stderr
    assert not any((clone / "results" / d).exists() for d in ("runs", "data"))
    study = clone / "results/studies/converged"
    for figure in ("learning_curves", "model_comparison", "tuning_curve", "context_vs_k",
                   "grad_vs_lag", "grad_norms"):
        assert (study / f"figures/{figure}.png").stat().st_size > 0, figure
    block = re.search(r"<!-- converged-table -->\n(.*?)<!-- /converged-table -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    assert (study / "tables/comparisons.md").read_text() == block.group(1)
    runs = pd.read_csv(study / "tables/runs.csv")
    assert len(runs) == 30 and (runs["status"] == "ok").all() and runs["test_ppl"].notna().all()
    # the numbers of "What the data show" are these tables' numbers
    answer = (ROOT / "README.md").read_text().split("What the data show", 1)[1]
    answer = " ".join(answer.split("## Setup and tests", 1)[0].split())
    curves = pd.read_csv(study / "tables/learning_curves.csv").query("epoch == 1")
    shown = curves[curves["model"].isin(["rnn_tanh+bf16", "lstm+bf16", "gru+bf16"])]
    assert len(shown) == 3
    for _, row in shown.iterrows():
        assert f"{row['mean']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]" in answer
    test = runs.groupby("model")["test_ppl"]
    best = test.min()[["rnn_relu+bf16", "rnn_tanh+bf16", "irnn+bf16"]].round(1).tolist()
    worst = test.max()[["lstm+bf16", "gru+bf16"]].round(1).tolist()
    assert "(relu {}, tanh {}, IRNN {})".format(*best) in answer
    assert "LSTM and GRU runs ({}, {})".format(*worst) in answer and max(worst) < min(best)
    lstm = runs[runs["model"] == "lstm+bf16"][["train_ppl", "valid_ppl"]].mean().round(1)
    assert f"perplexity {lstm['train_ppl']} while validation stays at {lstm['valid_ppl']}" in answer
