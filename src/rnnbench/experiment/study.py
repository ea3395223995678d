"""Which study a config is: the folder its tables, figures and report items belong to."""

from __future__ import annotations

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
