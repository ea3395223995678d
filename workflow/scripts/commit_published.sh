#!/usr/bin/env bash
# Copy what a study's worktree has published into this checkout and commit it (those folders
# only: anything else staged here stays as it is). Every ~10 minutes while a study trains:
#   workflow/scripts/commit_published.sh ../rnnbench-scaling scaling scaling_fp32
# A run or trial folder is published whole (rnnbench.io.atomic_dir), so a copy taken while
# the study writes holds whole folders; the hidden .tmp/.old folders of a publish in flight
# are left out (tar --exclude).
set -euo pipefail
src=${1:?usage: commit_published.sh WORKTREE EXPERIMENT...}
shift
cd "$(dirname "$0")/../.."
paths=()
for e in "$@"; do
    [ -d "$src/results/reference/$e" ] || continue
    mkdir -p "results/reference/$e"
    tar -C "$src/results/reference/$e" --exclude='*.tmp-*' --exclude='*.old-*' -cf - . | tar -C "results/reference/$e" -xf -
    paths+=("results/reference/$e")
done
[ ${#paths[@]} -gt 0 ] || exit 0
git add -- "${paths[@]}"
git diff --cached --quiet -- "${paths[@]}" && exit 0
runs=$(find "${paths[@]}" -name train.json -not -path '*/trials/*' | wc -l)
trials=$(find "${paths[@]}" -path '*/trials/*' -name train.json | wc -l)
git commit -q -m "${*// /, }: published so far, $runs final runs and $trials trials" -- "${paths[@]}"
echo "committed: $runs final runs, $trials trials"
