"""One row per configuration of a grid: test perplexity over seeds and seconds per epoch.

Reads run folders (a run's, or the small copies ``.ci/gpu-grid.sh`` makes): ``train.json``
(``status``; ``config`` with cell, hidden, layers), ``eval.json`` (``test_ppl``), ``history.csv``
(``seconds`` per epoch). Only ok runs with a finite test perplexity count in mean ± sd (n says
how many); diverged runs are counted beside n. s/epoch: the median over every epoch of the
configuration's ok runs, evaluated or not (a median: the first epoch pays CUDA's warm-up)::

    python -m rnnbench.analysis.gridtable results/runs/ptb/grid/* --gpu-name "NVIDIA H200" \
        --out grid.md
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnbench.analysis import render
from rnnbench.analysis.render import Table
from rnnbench.config import CELLS
from rnnbench.io import write_text

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One configuration (cell, hidden, layers): what its runs measured."""

    cell: str
    hidden: int
    layers: int
    test_ppl: list[float] = field(default_factory=list)  # ok and evaluated runs only
    epoch_seconds: list[float] = field(default_factory=list)  # every epoch of its ok runs
    diverged: int = 0
    runs: int = 0


def _read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable (a copy in progress)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def epoch_seconds(history: Path) -> list[float]:
    """The ``seconds`` column of a history.csv (none when the file is missing)."""
    if not history.exists():
        return []
    with history.open(newline="") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds")]


def collect(run_dirs: Iterable[Path]) -> list[Row]:
    """Rows of the configurations of ``run_dirs``, in the order of CELLS, hidden, layers."""
    rows: dict[tuple[str, int, int], Row] = {}
    for run_dir in run_dirs:
        meta = _read_json(run_dir / "train.json")
        if meta is None:
            log.warning("%s: no readable train.json, left out", run_dir)
            continue
        cfg = meta["config"]
        key = (cfg["cell"], int(cfg["hidden"]), int(cfg["layers"]))
        row = rows.setdefault(key, Row(*key))
        row.runs += 1
        if meta.get("status") != "ok":
            if meta.get("status") == "diverged":
                row.diverged += 1
            continue
        row.epoch_seconds += epoch_seconds(run_dir / "history.csv")
        ppl = (_read_json(run_dir / "eval.json") or {}).get("test_ppl")
        if ppl is not None and math.isfinite(ppl):
            row.test_ppl.append(float(ppl))
    order = {c: i for i, c in enumerate(CELLS)}
    return sorted(rows.values(), key=lambda r: (order.get(r.cell, len(order)), r.hidden, r.layers))


def ppl_text(row: Row) -> str:
    """``mean ± sd (n)``; one run has no sd, none a dash; diverged runs are counted after n."""
    n = len(row.test_ppl)
    if n == 0:
        text = "–"
    elif n == 1:
        text = f"{row.test_ppl[0]:.1f}"
    else:
        text = f"{statistics.fmean(row.test_ppl):.1f} ± {statistics.stdev(row.test_ppl):.1f}"
    note = f"; {row.diverged} diverged" if row.diverged else ""
    return f"{text} ({n}{note})"


def markdown(rows: Sequence[Row], gpu_name: str) -> str:
    """The table, with a line saying how many runs it counts."""
    table = Table(["cell", "hidden", "layers", "test ppl mean ± sd (n)",
                   f"s/epoch on {gpu_name}"], text_columns=1)
    for r in rows:
        sec = f"{statistics.median(r.epoch_seconds):.1f}" if r.epoch_seconds else "–"
        table.rows.append([r.cell, str(r.hidden), str(r.layers), ppl_text(r), sec])
    counted = sum(len(r.test_ppl) for r in rows)
    table.notes = [f"{counted} evaluated ok runs of {sum(r.runs for r in rows)} read, "
                   f"{len(rows)} configurations; s/epoch: median epoch time of the ok runs."]
    return render.markdown(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run folders in, one markdown table out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR")
    parser.add_argument("--gpu-name", required=True, help="device named in the s/epoch header")
    parser.add_argument("--out", required=True, type=Path, help="markdown file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rows = collect(d for d in args.run_dirs if d.is_dir())
    write_text(args.out, markdown(rows, args.gpu_name))
    log.info("%s: %d configurations", args.out, len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
