#!/usr/bin/env bash
# The SLURM step of CI: a one-node SLURM cluster with 2 fake GPUs on this machine, the tests
# marked `slurm` against it (tests/test_slurm.py, 3.5 minutes on 2 cores), and the
# cluster stopped again whatever happened, unless it was already running before.
#
#   .ci/slurm-ci.sh                 # as root, in the project's virtual environment
#   .ci/slurm-ci.sh -x -v           # extra pytest arguments are passed on
#
# Installs what it needs: slurm-wlm and munge with apt-get (.ci/slurm/up.sh, if missing), the
# Snakemake SLURM executor plugin with pip (the `slurm` extra of the package).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

started_here=0
cleanup() {
  if [[ "$started_here" -eq 1 ]]; then
    .ci/slurm/down.sh || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" -m pip install --quiet -e ".[slurm]"

if timeout 10 squeue -h -o %i >/dev/null 2>&1; then
  echo "[slurm-ci] using the SLURM controller that is already running" >&2
else
  started_here=1  # set before up.sh: a half-started cluster is stopped too
  .ci/slurm/up.sh
fi

# A missing cluster is an error here, not a reason to skip.
export RNNBENCH_REQUIRE_SLURM=1
start=$SECONDS
status=0
"$PYTHON" -m pytest -m slurm -p no:cacheprovider "$@" || status=$?
echo "[slurm-ci] pytest -m slurm: exit $status after $((SECONDS - start)) s" >&2
exit "$status"
