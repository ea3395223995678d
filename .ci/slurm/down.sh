#!/usr/bin/env bash
# Tear down the single-node CI SLURM cluster started by .ci/slurm/up.sh.
# Stops slurmd, slurmctld and munged (via `scontrol shutdown` + pid files).
# Bounded in time; never fails if the daemons are already down.
#
#   .ci/slurm/down.sh               # stop everything
#   .ci/slurm/down.sh --keep-munge  # leave munged running (used by up.sh)
set -uo pipefail

RUN_DIR=/run/slurm-ci
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGED_PID=/run/munge/munged.pid
KEEP_MUNGE=0
[[ "${1:-}" == "--keep-munge" ]] && KEEP_MUNGE=1

log() { echo "[slurm-down] $*" >&2; }

read_pid() {  # read_pid <pidfile> -> prints pid if the process is alive
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_pid() {  # stop_pid <name> <pidfile>: TERM, wait <=15 s, then KILL
  local name="$1" pidfile="$2" pid
  if ! pid="$(read_pid "$pidfile")"; then
    rm -f "$pidfile"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}

# Cancel leftover jobs, then ask slurmctld to shut down itself and all slurmds.
if read_pid "$CTLD_PID" >/dev/null && command -v scontrol >/dev/null 2>&1; then
  # scontrol shutdown leaves running jobs' slurmstepd behind, so cancel all
  # jobs first and give them KillWait (10 s) + a bit to go away.
  jobs="$(timeout 10 squeue -h -t PD,R,CG,S -o '%i' 2>/dev/null | tr '\n' ' ' || true)"
  if [[ -n "${jobs// /}" ]]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do
      [[ -z "$(timeout 10 squeue -h -t PD,R,CG,S -o '%i' 2>/dev/null || true)" ]] && break
      sleep 0.5
    done
  fi
  timeout 10 scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do
    read_pid "$CTLD_PID" >/dev/null || read_pid "$SLURMD_PID" >/dev/null || break
    sleep 0.5
  done
fi

stop_pid slurmd "$SLURMD_PID"
stop_pid slurmctld "$CTLD_PID"

# slurmstepd processes of jobs killed above normally exit with slurmd; report
# (but do not hunt down by name) anything that survived.
if command -v pgrep >/dev/null 2>&1; then
  left="$(pgrep -x slurmstepd 2>/dev/null | tr '\n' ' ' || true)"
  [[ -n "${left// /}" ]] && log "warning: slurmstepd processes still running: $left"
fi

if [[ "$KEEP_MUNGE" -eq 0 ]]; then
  stop_pid munged "$MUNGED_PID"
fi
log "done"
exit 0
