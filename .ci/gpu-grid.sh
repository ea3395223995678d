#!/usr/bin/env bash
# The default grid (config/grid.yaml, experiment `grid`: 72 runs) on one CUDA GPU, in one
# command of at most 9 minutes (issue #12, item 4). From the repository root:
#
#   OUT=/some/dir bash .ci/gpu-grid.sh              # H100/H200, 16 cores: <= 540 s wall
#   OUT=/some/dir DRY=1 bash .ci/gpu-grid.sh        # the same script on a CPU, tiny grids: ~1 min
#                                                   # (one concurrency; the rest: evaluations only)
#
# Needs python3 with torch, pandas, seaborn; snakemake is installed from the wheels in $WHEELS
# (a folder of .whl files, or one holding snakemake-py312/) when python3 lacks it. PTB is read
# from $PTB. Every section is bounded by `timeout` and writes under $OUT as soon as it has
# something, so a command killed at any point still returns what it had:
#   0. smoke test ($OUT/smoke.txt), snakemake, the tokenized corpus
#   a. sharing: the same 16 short runs (4 cells x hidden 150, 300 x 2 seeds, 1 epoch of 200
#      minibatches) 1, 4, 8 and 16 at a time, then the best of them under MPS when the machine
#      has it: $OUT/sharing.md, a row as each finishes
#   b. the grid: seed 1 of every configuration first, then everything else (the rest of the
#      seeds, gradients, tables, figures, publish_reference to results/reference/grid/), with
#      gpu=K runs sharing the GPU (K: the best concurrency of a, or $GRID_GPU); every ~10 s the
#      small files of each evaluated run are copied to $OUT/grid/<run id>/ and
#      $OUT/grid_table.md is rebuilt from those copies (python -m rnnbench.analysis.gridtable)
#   c. the last copies and grid_table.md; results/studies/*/tables/*.md; results/reference/grid/ and the
#      logs as tarballs
# Knobs: DRY=1, TOTAL_S (whole-script budget: 540, DRY 175), GRID_GPU (K), WD (Snakemake's
# working directory: the repository, DRY a temporary one), WHEELS, PTB.
set -uo pipefail
[ -f Snakefile ] && [ -f .ci/gpu-grid.sh ] || { echo "run from the repository root" >&2; exit 2; }
T0=$(date +%s)
REPO=$PWD
OUT=$(mkdir -p "${OUT:-$REPO/gpu-grid-out}" && cd "${OUT:-$REPO/gpu-grid-out}" && pwd)
PTB=$(cd "${PTB:-$REPO/../shared/data/ptb}" 2>/dev/null && pwd || echo "${PTB:-}")
WHEELS=${WHEELS:-$REPO/../shared/wheels}
DRY=${DRY:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-grid.XXXXXX")  # configs, logs of the sharing runs
if [ -n "$DRY" ]; then
    TOTAL_S=${TOTAL_S:-175} DEVICE=cpu CORES=2 CONCURRENCY="2" RESERVE_S=15
    WD=${WD:-$WORK/wd}
else
    TOTAL_S=${TOTAL_S:-540} DEVICE=cuda CORES=16 CONCURRENCY="1 4 8 16" RESERVE_S=30
    WD=${WD:-$REPO}
fi
mkdir -p "$WD" "$OUT/grid" "$OUT/logs"
export PYTHONUNBUFFERED=1

# --- 0. smoke test: is the GPU there (10 s), before anything costs time ---
MPS_ON= COPY_PID=
stop_mps() { [ -n "$MPS_ON" ] && echo quit | timeout 10 nvidia-cuda-mps-control; MPS_ON=; }
cleanup() {
    stop_mps
    [ -n "$COPY_PID" ] && kill "$COPY_PID" 2>/dev/null
    [ -n "$DRY" ] && [ -z "${KEEP_WORK:-}" ] && rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "$DRY" ]; then
    SMOKE='import torch; print("cpu, torch", torch.__version__)'
else
    SMOKE='import torch; torch.cuda.init(); print(torch.cuda.get_device_name())'
fi
timeout 20 python3 -c "$SMOKE" > "$OUT/smoke.txt" 2>&1 ||
    { echo "smoke test failed:"; cat "$OUT/smoke.txt"; exit 1; }
GPU_NAME=$(tail -1 "$OUT/smoke.txt")
[ -z "$DRY" ] || GPU_NAME="CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
echo "smoke: $(tail -1 "$OUT/smoke.txt")"

elapsed() { echo $(( $(date +%s) - T0 )); }
# seconds a section may take: at most $1, and never past the budget less the reserve
budget() {
    local left=$(( TOTAL_S - RESERVE_S - $(elapsed) ))
    echo $(( left < $1 ? (left > 1 ? left : 1) : $1 ))
}
since() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }
note() { echo "$*" | tee -a "$OUT/times.txt"; }

if ! python3 -c "import snakemake" 2>/dev/null; then
    wheels=("$WHEELS"/*.whl)
    [ -e "${wheels[0]}" ] || wheels=("$WHEELS"/snakemake-py312/*.whl)
    timeout 90 python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
        "${wheels[@]}" > "$OUT/logs/pip.log" 2>&1 || { cat "$OUT/logs/pip.log"; exit 1; }
    export PYTHONPATH="$WORK/site"
    export PATH="$WORK/site/bin:$PATH"
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
# rules run `python -m rnnbench...`; some images only have `python3`
# (a wrapper, not a symlink: a virtual environment's python3 must keep its own path)
mkdir -p "$WORK/pybin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" \
    > "$WORK/pybin/python" && chmod +x "$WORK/pybin/python"
export PATH="$WORK/pybin:$PATH"
# Up to 16 runs share the one GPU (rnnbench.training.gpus); Snakemake's gpu resource bounds how
# many.
export RNNBENCH_GPU_SLOTS=16 RNNBENCH_GPU_LOCK_DIR="$WORK/gpu-locks"
# -d: results/ and .snakemake/ of $WD; --nolock: a killed run leaves no stale lock behind
SNAKEMAKE=(python3 -m snakemake -s "$REPO/Snakefile" -d "$WD" --nolock --rerun-incomplete)

# The configs: sharing (and, DRY, a tiny grid) built from config/grid.yaml; target lists.
python3 - "$WORK" "$DRY" "$REPO/config/grid.yaml" <<'PY' || exit 1
import sys

import yaml

from rnnbench.experiment.grid import expand

work, dry, default = sys.argv[1], bool(sys.argv[2]), sys.argv[3]
base = yaml.safe_load(open(default))
share = dict(base, study="share", recipes={"share": dict(base["recipes"]["seed_rnn"], epochs=1,
                                          max_batches=5 if dry else 200, max_eval_batches=5)})
share["experiments"] = {"share": {
    "cells": ["rnn_tanh", "lstm"] if dry else ["rnn_tanh", "rnn_relu", "lstm", "gru"],
    "hidden": [16] if dry else [150, 300], "layers": [1], "seeds": [1, 2], "recipe": "share"}}
yaml.safe_dump(share, open(f"{work}/share.yaml", "w"), sort_keys=False)
grid, grid_path = base, default
if dry:  # the same experiment name, recipes and keys; two cells, one size, 5 minibatches
    for recipe in base["recipes"].values():
        recipe.update(epochs=1, max_batches=5, max_eval_batches=5)
    base["experiments"]["grid"].update(cells=["rnn_tanh", "lstm"], hidden=[16], layers=[1],
                                       seeds=[1, 2])
    grid_path = f"{work}/grid.yaml"
    yaml.safe_dump(grid, open(grid_path, "w"), sort_keys=False)
runs, _ = expand(share)
open(f"{work}/share.targets", "w").write("\n".join(f"{r.path}/train.json" for r in runs))
runs, _ = expand(grid)
first = min(r.config.seed for r in runs)
open(f"{work}/grid1.targets", "w").write(
    "\n".join(f"{r.path}/eval.json" for r in runs if r.config.seed == first))
open(f"{work}/grid.config", "w").write(grid_path)
# DRY: the rest is the other seeds' evaluations only (the whole pipeline is tested elsewhere)
open(f"{work}/grid_rest.targets", "w").write(
    "\n".join(f"{r.path}/eval.json" for r in runs if r.config.seed != first) if dry else "")
PY
GRID_CFG=$(cat "$WORK/grid.config")
SHARE_RUNS=$(wc -w < "$WORK/share.targets")
start=$(date +%s.%N)
timeout -k 5 "$(budget 90)" "${SNAKEMAKE[@]}" results/data/ptb/train.pt --cores "$CORES" \
    --configfile "$WORK/share.yaml" --config mirror="$PTB" > "$OUT/logs/corpus.log" 2>&1 \
    || { tail -20 "$OUT/logs/corpus.log"; exit 1; }
note "setup (smoke, snakemake, corpus): $(elapsed) s; corpus $(since "$start") s"

# --- a. sharing: the same runs at several concurrencies ---
# finished (status ok) runs of a folder, and the median training tokens/s of their epochs
finished() {
    python3 - "$1" <<'PY'
import csv, json, pathlib, statistics, sys
ok, rates = 0, []
for meta in pathlib.Path(sys.argv[1]).glob("*/train.json"):
    if json.loads(meta.read_text()).get("status") == "ok":
        ok += 1
        with open(meta.parent / "history.csv", newline="") as f:
            rates += [float(r["tokens_per_s"]) for r in csv.DictReader(f)]
print(ok, f"{statistics.median(rates):.0f}" if rates else "-")
PY
}
share_once() {  # concurrency, MPS (yes/no), timeout s
    local c=$1 mps=$2 limit wall rc ok rate per_min
    rm -rf "$WD/results/runs/ptb/share" "$WD/results/checkpoints/ptb/share"
    limit=$(budget "$3")
    start=$(date +%s.%N)
    timeout -k 5 "$limit" "${SNAKEMAKE[@]}" $(cat "$WORK/share.targets") --cores "$c" \
        --resources gpu="$c" --keep-going --configfile "$WORK/share.yaml" \
        --config mirror="$PTB" device="$DEVICE" > "$OUT/logs/share-$c-mps$mps.log" 2>&1
    rc=$?
    wall=$(since "$start")
    read -r ok rate < <(finished "$WD/results/runs/ptb/share")
    [ "$rc" -eq 0 ] || wall="$wall (exit $rc$( [ "$rc" -ge 124 ] && echo ", timeout ${limit} s"))"
    read -r per_min THROUGHPUT < <(python3 -c "import sys; ok, w = int(sys.argv[1]), \
        float(sys.argv[2]); print(f'{60 * ok / w:.1f}', ok / w)" "$ok" "${wall%% *}")
    echo "| $c | $mps | $wall | $ok/$SHARE_RUNS | $per_min | $rate |" >> "$OUT/sharing.md"
}
{
    echo "Sharing one $GPU_NAME: the same $SHARE_RUNS training runs (train.json targets, 1 epoch"
    echo "each, snakemake --cores N --resources gpu=N, RNNBENCH_GPU_SLOTS=16); wall includes"
    echo "Snakemake's start and each run's start (torch import, CUDA init)."
    echo
    echo "| concurrency | MPS | wall s | runs finished | runs/min | median tok/s per run |"
    echo "|---|---|---|---|---|---|"
} > "$OUT/sharing.md"
declare -A LIMIT=([1]=35 [2]=45 [4]=25 [8]=20 [16]=20)
[ -n "$DRY" ] && LIMIT[1]=60
BEST_C=1 BEST=0
for c in $CONCURRENCY; do
    share_once "$c" no "${LIMIT[$c]}"
    if python3 -c "import sys; sys.exit(not $THROUGHPUT >= $BEST)"; then
        BEST_C=$c BEST=$THROUGHPUT
    fi
done
if [ -z "$DRY" ] && command -v nvidia-cuda-mps-control > /dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY="$WORK/mps/pipe" CUDA_MPS_LOG_DIRECTORY="$WORK/mps/log"
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if timeout 10 nvidia-cuda-mps-control -d; then
        MPS_ON=1
        share_once "$BEST_C" yes 20
        stop_mps
        sleep 1
    else
        echo "| $BEST_C | yes | MPS daemon did not start | - | - | - |" >> "$OUT/sharing.md"
    fi
    cp -r "$CUDA_MPS_LOG_DIRECTORY" "$OUT/logs/mps" 2>/dev/null
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
else
    why=$([ -n "$DRY" ] && echo DRY || echo "no nvidia-cuda-mps-control")
    echo -e "\nMPS: not measured ($why)." >> "$OUT/sharing.md"
fi
note "a. sharing done at $(elapsed) s; best concurrency $BEST_C"
cat "$OUT/sharing.md"

# --- b. the grid: seed 1 of every configuration, then the rest ---
K=${GRID_GPU:-$BEST_C}
RUNS_DIR="$WD/results/runs/ptb/grid"
TABLE_NAME="$GPU_NAME, $([ -n "$DRY" ] && echo "$CORES jobs" || echo "$K runs sharing")"
SMALL=(train.json history.csv grad_stats.csv spectra.csv gradients.csv decay.csv gradients.json)
# copy the small files of every evaluated run (eval.json last: its copy says the run is there);
# rebuild grid_table.md from the copies when a run came in (or always, with an argument)
sync_grid() {
    local d id before
    before=$(ls "$OUT/grid" | wc -l)
    for d in "$RUNS_DIR"/*/; do
        [ -f "$d/eval.json" ] || continue
        id=$(basename "$d")
        mkdir -p "$OUT/grid/$id"
        for f in "${SMALL[@]}"; do [ -f "$d/$f" ] && cp -u "$d/$f" "$OUT/grid/$id/"; done
        [ -f "$OUT/grid/$id/eval.json" ] ||
            { cp "$d/eval.json" "$OUT/grid/$id/.eval.json" && mv "$OUT/grid/$id/.eval.json" \
                "$OUT/grid/$id/eval.json"; }
    done
    [ -n "${1:-}" ] || [ "$(ls "$OUT/grid" | wc -l)" != "$before" ] ||
        [ ! -f "$OUT/grid_table.md" ] || return 0
    python3 -m rnnbench.analysis.gridtable "$OUT"/grid/*/ --gpu-name "$TABLE_NAME" \
        --out "$OUT/grid_table.md" > /dev/null 2>&1
}
( while sleep 10; do sync_grid; done ) &
COPY_PID=$!
grid_phase() {  # name, then targets (none: every output of the config)
    local name=$1 limit
    shift
    limit=$(( $(budget 1000) - 15 ))
    [ "$limit" -gt 5 ] || { note "b. $name: no time left"; return; }
    start=$(date +%s.%N)
    timeout -k 15 "$limit" "${SNAKEMAKE[@]}" "$@" --cores "$CORES" --resources gpu="$K" \
        --keep-going --show-failed-logs --configfile "$GRID_CFG" \
        --config mirror="$PTB" device="$DEVICE" publish=True > "$OUT/logs/grid-$name.log" 2>&1
    note "b. $name: exit $? in $(since "$start") s (limit $limit s), $(ls "$RUNS_DIR"/*/eval.json \
        2>/dev/null | wc -l) runs evaluated"
}
grid_phase seed1 $(cat "$WORK/grid1.targets")
grid_phase rest $(cat "$WORK/grid_rest.targets")

# --- c. tables and copies ---
kill "$COPY_PID" 2>/dev/null
wait "$COPY_PID" 2>/dev/null
COPY_PID=
timeout 20 bash -c "$(declare -p RUNS_DIR OUT SMALL TABLE_NAME); $(declare -f sync_grid)
    sync_grid final"
for t in "$WD"/results/studies/*/tables/*.md; do [ -f "$t" ] && cp "$t" "$OUT/"; done
[ -d "$WD/results/reference/grid" ] &&
    timeout 20 tar czf "$OUT/reference_grid.tar.gz" -C "$WD" results/reference/grid
timeout 20 tar czf "$OUT/logs/results-logs.tar.gz" -C "$WD" results/logs results/benchmarks \
    2>/dev/null
note "c. done at $(elapsed) s: $(ls "$OUT/grid" | wc -l) grid runs copied"
cat "$OUT/grid_table.md" 2>/dev/null
