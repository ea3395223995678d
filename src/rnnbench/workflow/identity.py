"""What a finished output was computed from, checked before Snakemake reuses it (no torch).

Snakemake reruns a job when an input is newer than its outputs, when its code or shell command
changed, or when a params value changed, but only where its own metadata (``.snakemake/``) has
a record and only for params that do not depend on ``input``. A run's training configuration
depends on its tuning's selection (an input), and a copied or resumed results folder has no
record, so neither trigger can be trusted with a run's identity. Instead the outputs say what
they are: ``train.json`` records the run's whole configuration, and a corpus copy is known by its
SHA-256. Before any job (:func:`changed_runs`, :func:`changed_sources`) the recorded identity is
compared with the configured one; where they differ, the output is set aside (:func:`mark`:
moved under ``results/identity/``), so that Snakemake itself reruns its job ("missing output
files") and the dry run shows it too. Nothing subtler works: a touched output is not enough,
since Snakemake does not count an input as updated whose checksum it has recorded. An output set
aside whose identity agrees again (the config edited back before the job ran) is put back, so
going back to the configuration that a run was trained with reruns nothing; once the job has
made the output anew, the old one is deleted. No input or params is added to any rule:
Snakemake's own records of the jobs stay as they were.

Identity of a run: every field of its :class:`rnnbench.config.RunConfig` (the machine's
``device`` too: another device is another run). A tuned experiment's final run leaves out the
tuned keys: they come from its selection file, an input, which reruns it when rewritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rnnbench.data.download import sha256_of
from rnnbench.data.sources import local_source
from rnnbench.experiment.grid import Run

ASIDE = "results/identity"  # outputs set aside, at their path below results/


def run_identity(run: Run, tuned: set[str] = frozenset()) -> dict[str, Any]:
    """The configuration a run's recorded one must equal (a final run's tuned keys aside)."""
    skip = tuned if run.role == "final" else set()
    return {k: v for k, v in run.config.to_dict().items() if k not in skip}


def differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> dict[str, list]:
    """``{key: [recorded value, configured value]}`` for every key where they differ."""
    return {k: [recorded.get(k), v] for k, v in wanted.items() if recorded.get(k) != v}


def describe(changes: dict[str, list], limit: int = 3) -> str:
    """``lr 1.0 -> 2.0, epochs 2 -> 3`` (at most ``limit`` keys, then how many more)."""
    parts = [f"{k} {old!r} -> {new!r}" for k, (old, new) in list(changes.items())[:limit]]
    more = len(changes) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def aside_path(output: str) -> Path:
    """Where an output of another identity is kept until its job has made it anew."""
    return Path(ASIDE, output.removeprefix("results/"))


def present(output: str) -> Path | None:
    """The output, else its copy set aside, else None."""
    for path in (Path(output), aside_path(output)):
        if path.exists():
            return path
    return None


def recorded_config(train_json: Path | None) -> dict[str, Any] | None:
    """The configuration a finished run's train.json records, None when there is none (no
    file, unreadable: a half-written file is Snakemake's incomplete output, not a run)."""
    try:
        meta = json.loads(train_json.read_text()) if train_json else None
    except (OSError, ValueError):
        return None
    config = meta.get("config") if isinstance(meta, dict) else None
    return config if isinstance(config, dict) else None


def changed_runs(runs: list[Run], tuned: dict[str, set[str]]) -> dict[str, dict[str, list]]:
    """Per run trained here with another configuration (its ``{path}/train.json``, or that
    file set aside), the keys whose recorded value differs from the configured one."""
    changed = {}
    for run in runs:
        output = f"{run.path}/train.json"
        recorded = recorded_config(present(output))
        if recorded is None:
            continue
        diff = differences(recorded, run_identity(run, tuned.get(run.experiment, set())))
        if diff:
            changed[output] = diff
    return changed


def run_folders(changed: dict[str, dict[str, list]]) -> set[str]:
    """The run folders of :func:`changed_runs`'s result (the plan counts them as to train)."""
    return {str(Path(p).parent) for p in changed}


def mark(changed: dict[str, dict[str, list]], outputs: list[str]) -> None:
    """Set aside every output of ``changed``; of the other ``outputs``, put back one set aside
    when it is missing (it agrees again), or delete it when its job has made it anew."""
    for output in outputs:
        path, aside = Path(output), aside_path(output)
        if output in changed:
            if path.exists():
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, aside)
        elif aside.exists():
            if path.exists():
                aside.unlink()
            else:
                os.replace(aside, path)


def changed_note(changed: dict[str, dict[str, list]], what: str = "runs",
                 why: str = "were made with another configuration") -> str:
    """The plan's line on the outputs that are made again and why ('' when none)."""
    if not changed:
        return ""
    shown = "; ".join(f"{_shown(p)} ({describe(d)})" for p, d in list(changed.items())[:3])
    more = f"; and {len(changed) - 3} more" if len(changed) > 3 else ""
    return f"\n  Changed: {len(changed)} {what} {why} and are made again: {shown}{more}."


def _shown(output: str) -> str:
    """``quick/lstm-h32-l1-s1`` for a run's train.json, a corpus copy's path as it is."""
    parts = output.split("/")
    return "/".join(parts[3:5]) if parts[-1] == "train.json" else output


def changed_sources(files: dict[str, dict], raw_dir: str) -> dict[str, dict[str, list]]:
    """Per corpus copy (``{raw_dir}/{split}.txt``, or that file set aside) of a local file
    without a configured ``sha256``, the copy's and the file's SHA-256 where they differ: the
    file is hashed at every invocation (PTB's 6 MB in milliseconds), never trusted by its mtime
    or size. A file with a ``sha256`` is checked against it instead
    (rnnbench.data.download.verify_downloaded)."""
    changed = {}
    for split, spec in files.items():
        copy, local = f"{raw_dir}/{split}.txt", local_source(spec["url"])
        have_path = present(copy)
        if spec.get("sha256") or local is None or have_path is None or not local.is_file():
            continue
        try:
            have, wanted = sha256_of(have_path), sha256_of(local)
        except OSError:  # unreadable: the download job names it
            continue
        if have != wanted:
            changed[copy] = {"sha256": [have, wanted]}
    return changed
