#!/usr/bin/env bash
# Train a published study one budget at a time, smallest first, then build its tables,
# figures and provenance (rnnbench.workflow.phases). Run it in the study's own git worktree
# (publish refuses uncommitted training code); rerun the same command to resume: every
# finished run is published under results/reference/ and skipped, a stopped one resumes from
# its checkpoint.
#   workflow/scripts/train_study.sh config/scaling.yaml ../shared/data/ptb [extra snakemake flags]
# Each phase is `snakemake <that budget's published runs> --cores 3 --resources gpu=2`: two
# training, evaluation or measurement jobs at a time (one per core), a third slot for copies.
set -euo pipefail
config=${1:?usage: train_study.sh CONFIG MIRROR [snakemake flags]}
mirror=${2:?usage: train_study.sh CONFIG MIRROR [snakemake flags]}
shift 2
flags=(--cores 3 --resources gpu=2 --rerun-incomplete --configfile "$config")
for budget in $(python -m rnnbench.workflow.phases "$config"); do
    echo "[train_study] $(date -u +%FT%TZ) budget $budget" >&2
    mapfile -t targets < <(python -m rnnbench.workflow.phases "$config" "$budget")
    snakemake "${targets[@]}" "${flags[@]}" "$@" --config mirror="$mirror"
done
echo "[train_study] $(date -u +%FT%TZ) tables, figures, provenance" >&2
snakemake "${flags[@]}" "$@" --config mirror="$mirror"
