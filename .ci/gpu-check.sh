#!/usr/bin/env bash
# Every GPU measurement that docs/performance.md lacks, in one script for a machine with one
# CUDA GPU (run from the repository root; about 8 minutes on an H100/H200):
#
#   OUT=gpu-out PTB=/path/to/ptb bash .ci/gpu-check.sh
#
# Needs python3 with torch (CUDA), pandas, seaborn; snakemake is installed from the wheels in
# $WHEELS when it is missing (an offline machine). Sections, each bounded by `timeout`:
#   1. config/reproduce.yaml: 3 experiments x 3 seeds + the 3 gradient runs, 12 jobs sharing
#      the GPU; publishes results/reference/ (copied to $OUT/reference.tar.gz)
#   2. the course lab's RNN recipe, 10 epochs + evaluation, alone on the GPU: wall time
#   3. bench: the naive loop vs our training step on the GPU
#   4. the quick config end to end through Snakemake on CUDA
#   5. runs sharing one GPU: the same 8 short runs with 1, 4 and 8 jobs at a time
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
WORK=$(mktemp -d)  # logs and side results; $OUT gets the tarballs and the bench table
PTB=${PTB:-$PWD/../shared/data/ptb}
WHEELS=${WHEELS:-$PWD/.gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c "import snakemake" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# rules run `python -m rnnbench...`; some images only have `python3`
# (a wrapper, not a symlink: a virtual environment's python3 must keep its own path)
mkdir -p /tmp/pybin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/pybin/python
chmod +x /tmp/pybin/python
export PATH="/tmp/pybin:/tmp/site/bin:$PATH"
# Runs may share the one GPU (see rnnbench.training.gpus); Snakemake's gpu resource bounds how many.
export RNNBENCH_GPU_SLOTS=16
SNAKEMAKE=(python3 -m snakemake)
section() { echo; echo "=== $1 ($(date +%T))"; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }

section "machine"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "cpus $(nproc)"

section "1. reproduce.yaml: 12 runs sharing the GPU"
start=$(date +%s.%N)
timeout 250 "${SNAKEMAKE[@]}" --cores 16 --resources gpu=12 --configfile config/reproduce.yaml \
    -q --config mirror="$PTB" device=cuda --show-failed-logs --keep-going > "$WORK/reproduce.log" 2>&1
tail -5 "$WORK/reproduce.log"
echo "reproduce exit $? in $(seconds "$start" "$(date +%s.%N)") s"
cat results/reference/reference.md results/studies/*/tables/summary.md
tar czf "$OUT/reference.tar.gz" results/reference results/studies \
    results/logs results/benchmarks "$WORK/reproduce.log" 2>/dev/null

section "2. seed RNN recipe alone on the GPU (10 epochs + evaluation)"
start=$(date +%s.%N)
timeout 70 python3 -m rnnbench.training.train --cell rnn_tanh --hidden 150 --epochs 10 --lr 1.0 \
    --decay-start 4 --decay-factor 1.1 --device cuda --data-dir results/data/ptb \
    --run-dir "$WORK/seed_rnn_alone" --checkpoint /tmp/seed_rnn_alone.pt --log-interval 2000 \
    > "$WORK/seed_rnn_alone.log" 2>&1
timeout 30 python3 -m rnnbench.diagnostics.evaluate --run-dir "$WORK/seed_rnn_alone" --device cuda \
    --data-dir results/data/ptb --out "$WORK/seed_rnn_alone/eval.json" >> "$WORK/seed_rnn_alone.log" 2>&1
echo "seed RNN 10 epochs + evaluation: $(seconds "$start" "$(date +%s.%N)") s wall"
grep -E "lr .*valid ppl|test:" "$WORK/seed_rnn_alone.log" | cut -c21-
rm -f "$WORK/seed_rnn_alone/model.pt" "$WORK/seed_rnn_alone/steps.csv.gz"

section "3. bench: naive loop vs our step"
timeout 50 python3 -m rnnbench.bench.bench --device cuda \
    --configs rnn_tanh:150:1,lstm:300:1,lstm:650:2 --out "$OUT/bench_gpu.csv" 2>&1 | tail -12

section "4. quick config on CUDA"
start=$(date +%s.%N)
timeout 50 "${SNAKEMAKE[@]}" --cores 8 --resources gpu=4 --configfile config/quick.yaml -q \
    --config mirror="$PTB" device=cuda --show-failed-logs > "$WORK/quick.log" 2>&1
echo "quick config exit $? in $(seconds "$start" "$(date +%s.%N)") s"
cat results/studies/*/tables/summary.md

section "5. GPU sharing: 8 runs (4 cells x 2 seeds, hidden 150, 1 epoch of 400 minibatches)"
python3 - <<'PY'
import yaml
c = yaml.safe_load(open("config/grid.yaml"))
c["recipes"]["share"] = dict(c["recipes"]["seed_rnn"], epochs=1, max_batches=400)
c["experiments"] = {"share": {"cells": ["rnn_tanh", "rnn_relu", "lstm", "gru"], "hidden": [150],
                              "layers": [1], "seeds": [1, 2], "recipe": "share"}}
yaml.safe_dump(c, open("/tmp/share.yaml", "w"), sort_keys=False)
PY
for jobs in 1 8; do
    rm -rf results/runs/ptb/share results/checkpoints/ptb/share
    start=$(date +%s.%N)
    timeout 40 "${SNAKEMAKE[@]}" $(python3 -c "print(' '.join(
        f'results/runs/ptb/share/{c}-h150-l1-s{s}/train.json'
        for c in ('rnn_tanh', 'rnn_relu', 'lstm', 'gru') for s in (1, 2)))") \
        --cores "$jobs" --resources gpu="$jobs" -q --configfile /tmp/share.yaml \
        --config mirror="$PTB" device=cuda > "$WORK/share-$jobs.log" 2>&1
    rc=$?
    echo "jobs=$jobs exit=$rc wall=$(seconds "$start" "$(date +%s.%N)") s"
done
tar czf "$OUT/extras.tar.gz" "$WORK" results/studies/*/tables/summary.md 2>/dev/null
section "done"
