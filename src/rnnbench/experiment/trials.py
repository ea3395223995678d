"""The trials table (trials.csv) of tuned experiments: one row per trial and rung, the edge
and seed annotations, and the join of each final run with its selection (no torch import)."""

from __future__ import annotations

import csv
from typing import Any


def edge_flags(point: dict[str, Any], space: dict[str, list]) -> list[str]:
    """``key=min`` / ``key=max`` for each numeric key of ``point`` at an end of its values
    in ``space`` (keys with fewer than two numeric values have no edge)."""
    flags = []
    for key, value in sorted(point.items()):
        numbers = {float(v) for v in space.get(key, ()) if _is_number(v)}
        value = _as_number(value)
        if len(numbers) < 2 or value is None:
            continue
        if value == min(numbers):
            flags.append(f"{key}=min")
        elif value == max(numbers):
            flags.append(f"{key}=max")
    return flags


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    """A point's value as a number (trials.csv read back gives text), else None."""
    if _is_number(value):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value not in ("True", "False") else None
    except ValueError:
        return None


def trial_rows(selections: list[dict]) -> list[dict]:
    """trials.csv: one row per trial and rung, with the group's labels, the point's keys, the
    status and its reason, and the rung's finished trials against its planned promotions."""
    rows = []
    for sel in selections:
        last = sel["rung"] == sel["rungs"] - 1
        rung = {"finished_in_rung": sel.get("finished"),
                "planned_promotions": sel.get("planned_promotions"),
                "underfilled": sel.get("underfilled")}
        for t in sel["trials"]:
            rows.append({**sel["labels"], "rung": sel["rung"], "run_id": t["run_id"],
                         **t["point"], "status": t["status"], "reason": t.get("reason", ""),
                         "valid_ppl": t["valid_ppl"], "rank": t["rank"],
                         "promoted": t["promoted"] and not last,
                         "selected": last and t["point"] == sel["selected"], **rung})
    return rows


def annotate(rows: list[dict], tunings: dict[str, dict]) -> list[dict]:
    """Each row with its experiment's trial seed, whether a final run shares it, and, on a
    selected row, the edges of the space it sits on (``tunings``: experiment -> its space,
    trial_seed and final seeds). Rows read back from a published trials.csv keep the trial
    seed they record; their edges are recomputed from the config's space."""
    out = []
    for row in rows:
        spec = tunings.get(row["experiment"])
        if spec is None:
            out.append(row)
            continue
        seed = int(row.get("trial_seed") or spec["trial_seed"])
        selected = str(row["selected"]) == "True"
        point = {k: row[k] for k in spec["space"] if k in row}
        out.append({**row, "edge": "; ".join(edge_flags(point, spec["space"]))
                    if selected else "", "trial_seed": seed,
                    "shared_seed": seed in spec["seeds"]})
    return out


def with_edges(runs: Any, trials: Any) -> Any:
    """``runs`` (runs.csv) with ``tuning_edge``: the edges of the point each final run's
    model selected (trials.csv's selected rows; a final run's id is its model's + -s{seed})."""
    chosen = trials[trials["selected"].astype(str) == "True"]
    edges = {(r["experiment"], r["model"]): r.get("edge") for _, r in chosen.iterrows()}
    groups = [rid.removesuffix(f"-s{seed}") for rid, seed in zip(runs["run_id"], runs["seed"],
                                                                 strict=True)]
    found = [edges.get((e, g)) for e, g in zip(runs["experiment"], groups, strict=True)]
    return runs.assign(tuning_edge=[e if isinstance(e, str) and e else None for e in found])


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV text (quoted where a value needs it), columns in order of first use."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def tuning_budgets(trials: Any) -> dict[str, str]:
    """Per experiment of ``trials`` (trials.csv), one sentence on the tuning budget of each
    model: its trials per rung (a range where models differ: a diverged trial is never
    promoted), ranked on validation perplexity only."""
    budgets = {}
    for experiment, block in trials.groupby("experiment", sort=False):
        counts = block.groupby(["model", "rung"]).size().unstack(fill_value=0)
        spans = [f"{lo}" if lo == hi else f"{lo}–{hi}"
                 for lo, hi in zip(counts.min(), counts.max(), strict=True)]
        totals = counts.sum(axis=1)
        total = (f"{totals.min()}" if totals.min() == totals.max()
                 else f"{totals.min()}–{totals.max()}")
        again = "".join(f", then the best {s} again, longer" for s in spans[1:])
        fewer = " (fewer where trials diverged)" if totals.min() < totals.max() else ""
        budgets[str(experiment)] = (
            f"Tuning budget of every model: {spans[0]} trials{again}{fewer}, {total} in all, "
            "ranked on validation perplexity only (trials.csv).")
    return budgets
