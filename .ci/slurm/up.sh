#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on localhost (CI / `pytest -m slurm`).
#
#   sudo .ci/slurm/up.sh        # idempotent; safe to run twice
#   .ci/slurm/down.sh           # tear down again
#
# - installs Debian's slurm-wlm + munge if `slurmctld` is missing
# - no slurmdbd: accounting_storage/none (=> use `--slurm-status-command squeue`)
# - one node named `hostname -s`, CPUs/RealMemory from `slurmd -C`,
#   2 fake GPUs (gres gpu:2 backed by /dev/fakegpu0-1 char devices)
# - partition `debug` (Default=YES, MaxTime=INFINITE)
# - daemons run without systemd; pid files in /run/slurm-ci, logs in /var/log/slurm
#
# Environment knobs:
#   SLURM_CI_WAIT   seconds to wait for the node to become idle (default 60)
#   SLURM_CI_CLEAN  =1: cold-start slurmctld (-c), discarding saved jobs
set -euo pipefail

WAIT_S="${SLURM_CI_WAIT:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
GRES_CONF="$CONF_DIR/gres.conf"
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm-ci
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGED_PID=/run/munge/munged.pid
NODE="$(hostname -s)"

log() { echo "[slurm-up] $*" >&2; }
die() { log "ERROR: $*"; dump_logs; exit 1; }

dump_logs() {
  local f
  for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" \
           "$LOG_DIR/slurmctld.stdout" "$LOG_DIR/slurmd.stdout" \
           /var/log/munge/munged.log; do
    if [[ -s "$f" ]]; then
      echo "----- tail -n 40 $f -----" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
}

pid_alive() {  # pid_alive <pidfile>
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

if [[ "$(id -u)" -ne 0 ]]; then
  echo "[slurm-up] must run as root (try: sudo $0)" >&2
  exit 1
fi

t_start=$SECONDS

# ---------------------------------------------------------------- install ---
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurm-wlm + munge via apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # keep package postinst scripts from trying to start services
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  timeout 300 apt-get update -qq
  timeout 900 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    slurm-wlm munge >/dev/null
  if [[ "$created_policy" -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  log "installed: $(slurmctld -V)"
fi

# ------------------------------------------------------------------ munge ---
install -d -m 0700 -o munge -g munge /etc/munge
install -d -m 0711 -o munge -g munge /var/lib/munge
install -d -m 0700 -o munge -g munge /var/log/munge
install -d -m 0755 -o munge -g munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if pid_alive "$MUNGED_PID" && timeout 5 munge -n </dev/null | timeout 5 unmunge >/dev/null 2>&1; then
  log "munged already running (pid $(cat "$MUNGED_PID"))"
else
  log "starting munged"
  rm -f "$MUNGED_PID" /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # munged daemonizes itself and writes $MUNGED_PID
  runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGED_PID" \
    || die "munged failed to start"
  ok=0
  for _ in $(seq 1 20); do
    if timeout 5 munge -n </dev/null | timeout 5 unmunge >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  [[ "$ok" -eq 1 ]] || die "munge credential round-trip failed"
fi

# ------------------------------------------------------------ config/dirs ---
install -d -m 0755 "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"

# Fake GPUs: char devices with /dev/null's major/minor. slurmd insists on a
# character/block device (a regular file is rejected and CUDA_VISIBLE_DEVICES
# stays empty); it derives CUDA_VISIBLE_DEVICES from the allocated index.
# Where mknod is not permitted, a symlink to /dev/null works as well.
for i in 0 1; do
  dev="/dev/fakegpu$i"
  if [[ ! -c "$dev" ]]; then
    rm -f "$dev"
    if ! mknod -m 0666 "$dev" c 1 3 2>/dev/null; then
      log "mknod $dev not permitted; using a symlink to /dev/null instead"
      ln -sfn /dev/null "$dev" || die "cannot create $dev"
    fi
  fi
done

# Hardware line of `slurmd -C`, e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hw="$(slurmd -C | head -n 1)"
[[ "$hw" == NodeName=* ]] || die "unexpected 'slurmd -C' output: $hw"
hw="${hw#NodeName=* }"   # drop NodeName=..., keep the hardware description
cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"

new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<EOF
# Generated by .ci/slurm/up.sh -- single-node CI cluster, no slurmdbd.
ClusterName=rnnbench-ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none

StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No accounting daemon: sacct does not work, use squeue for job status.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

# Finished jobs stay visible to 'squeue --states=all' for MinJobAge seconds.
# Must be >= 3x snakemake's --slurm-init-seconds-before-status-checks.
MinJobAge=300
# Time between SIGTERM and SIGKILL when a job hits its time limit / is cancelled.
KillWait=10
OverTimeLimit=0
InactiveLimit=0
# Single node: if slurmd dies, mark it DOWN after 120 s; ReturnToService=2
# brings it back as soon as slurmd registers again with a valid config.
SlurmdTimeout=120
SlurmctldTimeout=60
ReturnToService=2
# Allow batch jobs to be requeued (sbatch --requeue / scontrol requeue).
JobRequeue=1

SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=512

GresTypes=gpu

NodeName=${NODE} NodeAddr=127.0.0.1 ${hw} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF

new_gres="AutoDetect=off
Name=gpu File=/dev/fakegpu[0-1]"

changed=0
if ! cmp -s "$new_conf" "$CONF" 2>/dev/null; then changed=1; fi
if [[ "$(cat "$GRES_CONF" 2>/dev/null || true)" != "$new_gres" ]]; then changed=1; fi
install -m 0644 "$new_conf" "$CONF"
printf '%s\n' "$new_gres" >"$GRES_CONF"
chmod 0644 "$GRES_CONF"
# Debian's slurm packages ship no cgroup.conf; none needed with linuxproc/none.

# ----------------------------------------------------------------- daemons ---
ctld_up=0; slurmd_up=0
pid_alive "$CTLD_PID" && ctld_up=1
pid_alive "$SLURMD_PID" && slurmd_up=1

if [[ "$changed" -eq 1 && ( "$ctld_up" -eq 1 || "$slurmd_up" -eq 1 ) ]]; then
  log "slurm.conf/gres.conf changed; restarting daemons"
  "$(dirname "$0")/down.sh" --keep-munge
  ctld_up=0; slurmd_up=0
fi

if [[ "$ctld_up" -eq 0 ]]; then
  log "starting slurmctld"
  rm -f "$CTLD_PID"
  ctld_args=()
  [[ "${SLURM_CI_CLEAN:-0}" == 1 ]] && ctld_args+=(-c)
  # Without -D slurmctld daemonizes and writes SlurmctldPidFile.
  slurmctld "${ctld_args[@]}" >>"$LOG_DIR/slurmctld.stdout" 2>&1 \
    || die "slurmctld failed to start"
else
  log "slurmctld already running (pid $(cat "$CTLD_PID"))"
fi

slurmd_started_at=0
if [[ "$slurmd_up" -eq 0 ]]; then
  log "starting slurmd"
  rm -f "$SLURMD_PID"
  slurmd_started_at="$(date +%s)"
  slurmd -N "$NODE" >>"$LOG_DIR/slurmd.stdout" 2>&1 || die "slurmd failed to start"
else
  log "slurmd already running (pid $(cat "$SLURMD_PID"))"
fi

# ------------------------------------------------------------- wait idle ---
log "waiting up to ${WAIT_S}s for node ${NODE} to become idle"
deadline=$((SECONDS + WAIT_S))
resumed=0
state=""
while :; do
  state="$(timeout 10 sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)"
  case "$state" in
    idle|mix|mixed|alloc|allocated)
      # slurmctld may report the saved state before the fresh slurmd has
      # registered; require SlurmdStartTime to be from this run.
      [[ "$slurmd_started_at" -eq 0 ]] && break
      reg="$(timeout 10 scontrol show node -o "$NODE" 2>/dev/null \
             | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p' || true)"
      reg_s="$(date -d "$reg" +%s 2>/dev/null || echo 0)"
      (( reg_s >= slurmd_started_at - 2 )) && break ;;
    down*|drain*|drng*|fail*)
      # e.g. saved state from a previous run; ReturnToService=2 usually
      # handles this, but resume explicitly once to be sure.
      if [[ "$resumed" -eq 0 ]]; then
        timeout 10 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        resumed=1
      fi ;;
  esac
  if (( SECONDS >= deadline )); then
    timeout 10 scontrol show node "$NODE" >&2 || true
    die "node ${NODE} not idle after ${WAIT_S}s (state: '${state:-no answer}')"
  fi
  if ! pid_alive "$CTLD_PID"; then die "slurmctld died"; fi
  if ! pid_alive "$SLURMD_PID"; then die "slurmd died"; fi
  sleep 1
done

log "cluster up in $((SECONDS - t_start))s (node ${NODE}: ${state}, ${cpus} CPUs, gpu:2)"
timeout 10 sinfo
