"""Which study a config is: the folder its tables, figures and report items belong to."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def study_name(config: dict, configfiles) -> str:
    """The config's `study` key, or else the name of the last config file given (the one
    whose keys won) without its suffix: config/fair.yaml -> fair."""
    name = config.get("study")
    if not name:
        files = [Path(f) for f in configfiles or ()]
        if not files:
            raise ValueError(
                "no config file and no `study` key: give --configfile config/NAME.yaml or "
                "--config study=NAME, so that the tables and figures have a folder of their own"
            )
        name = files[-1].name.split(".")[0]
        if not NAME.match(name):
            raise ValueError(
                f"the config file {files[-1]} gives the study name {name!r}, which is not a "
                "usable folder name (letters, digits, _ . -, at most 64 characters, not "
                "starting with . or -): rename the file or set `study: NAME` in it"
            )
    return name


# What a study's tables are computed from: its record names the config that made them.
OWNER_FILE = "study.json"
CONTENT_KEYS = ("corpus", "recipes", "experiments")


def config_paths(configfiles) -> list[str]:
    """The config files, relative to the working directory where they lie inside it (a moved
    or cloned checkout keeps them), else absolute."""
    here = Path.cwd().resolve()
    paths = []
    for f in configfiles or ():
        path = Path(f).resolve()
        paths.append(str(path.relative_to(here)) if path.is_relative_to(here) else str(path))
    return paths


def config_digest(config: dict) -> str:
    """SHA-256 of the config's corpus, recipes and experiments (what its tables hold)."""
    content = {k: config.get(k) for k in CONTENT_KEYS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def owner_record(config: dict, configfiles) -> dict:
    """What ``study.json`` records: the config files and the digest of their content."""
    return {"configs": config_paths(configfiles), "sha256": config_digest(config)}


def recorded_owner(folder: str | os.PathLike) -> dict | None:
    """The record of the config that made the study in ``folder``, if any (unreadable: none,
    the next run writes it again)."""
    try:
        record = json.loads((Path(folder) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def owner_refusal(name: str, folder: str | os.PathLike, record: dict) -> str | None:
    """One paragraph when the study ``name`` in ``folder`` was made by another config: the
    same config is the same files (a grown or edited grid keeps its path) or the same content
    (a copy of the config elsewhere)."""
    owner = recorded_owner(folder)
    if owner is None or owner.get("configs") == record["configs"] or \
            owner.get("sha256") == record["sha256"]:
        return None
    theirs = ", ".join(owner.get("configs") or ["(no config file)"])
    ours = ", ".join(record["configs"] or ["(no config file)"])
    return (
        f"study {name!r} belongs to another config: its tables in {folder}/ were made from "
        f"{theirs}, and this run's config is {ours}, with other experiments, recipes or "
        "corpus. Both would write the same tables and report, each replacing the other's. "
        f"Give this config a study of its own: `study: NAME` in {ours}, or --config "
        f"study=NAME on the command line. If it really is the same study, moved or renamed, "
        f"delete {folder}/{OWNER_FILE} and rerun: this config then owns it."
    )


def claim(folder: str | os.PathLike, record: dict) -> None:
    """Record this config as the one that makes the study in ``folder``."""
    from rnnbench.io import write_json

    if recorded_owner(folder) != record:
        write_json(Path(folder) / OWNER_FILE, record)


def check_report_ready(name: str, tables: list[str]) -> None:
    """Refuse to build a report of a study whose tables are not built yet (it would be a
    report of nothing, or of files another config left behind)."""
    missing = [t for t in tables if not Path(t).exists()]
    if missing:
        raise ValueError(
            f"no report yet for study {name!r}: {len(missing)} of its tables are not built "
            f"(first: {missing[0]}). Run the same command without --report first (with the "
            "same --configfile), or rebuild the tables from the published files with "
            "--config source=reference; then ask for the report again."
        )


def report_status(runs: list[str], tables: str | os.PathLike, shown: int = 5) -> dict:
    """How many of the config's ``runs`` (``experiment/run_id``) the study's ``runs.csv``
    holds, and the first ``shown`` of those it lacks (a grid grown since the tables were
    built, runs not trained yet): the report's landing page says so."""
    try:
        with open(tables, newline="") as f:
            have = {f"{row.get('experiment')}/{row.get('run_id')}" for row in csv.DictReader(f)}
    except OSError:
        have = set()
    missing = [r for r in runs if r not in have]
    return {"runs": len(runs), "in_tables": len(runs) - len(missing),
            "missing": len(missing), "first_missing": missing[:shown]}


def report_status_line(name: str, status: dict) -> str:
    """The terminal's line for a report that leaves runs of its config out ('' if none)."""
    if not status["missing"]:
        return ""
    more = f" and {status['missing'] - len(status['first_missing'])} more" \
        if status["missing"] > len(status["first_missing"]) else ""
    return (f"[rnnbench] the report of study {name!r} has {status['in_tables']} of the "
            f"{status['runs']} runs of its config; missing: "
            f"{', '.join(status['first_missing'])}{more}. Run the same command without "
            "--report to train them and rebuild the tables, then build the report again.")
