#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, without systemd: munged,
# slurmctld and slurmd started as root from Debian's packages (slurm-wlm,
# munge), one partition "cpu" holding every core. For trying
# tools/slurm_train.sh, tools/slurm_test.sh and tools/slurm_train.sbatch
# where no cluster is at hand (tests/test_slurm.py uses it).
#
#   bash .dev_scripts/slurm_local.sh start [--install]   # then: export SLURM_CONF=...
#   bash .dev_scripts/slurm_local.sh stop
#
# --install: apt-get install slurm-wlm and munge first if they are missing.
# Environment: SLURM_LOCAL_DIR (default /tmp/mmcached-slurm): configuration,
# state, logs and pid files. Needs root (the daemons run as root).
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/mmcached-slurm}
CONF=$DIR/slurm.conf
ACTION=${1:-}
INSTALL=0
[ "${2:-}" = --install ] && INSTALL=1

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

stop() {
  for pid in "$DIR"/slurmd.pid "$DIR"/slurmctld.pid "$DIR"/munged.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (the Slurm daemons run as root here)"
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    [ "$INSTALL" = 1 ] || die "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge, or pass --install)"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
  fi
  stop
  mkdir -p "$DIR"/ctld "$DIR"/d "$DIR"/munge
  chmod 700 "$DIR"/munge
  # munge: a key owned by the user munged runs as (root here)
  if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
  fi
  chmod 400 "$DIR/munge/munge.key"
  mkdir -p /run/munge
  munged --force --key-file="$DIR/munge/munge.key" \
    --socket=/run/munge/munge.socket.2 --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munge.seed" \
    || die "munged did not start (see $DIR/munged.log)"

  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$CONF" <<EOF
ClusterName=mmcached-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again once its credential expired (default 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$CONF
  slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/slurmctld.log)"
  slurmd -f "$CONF" || die "slurmd did not start (see $DIR/slurmd.log)"
  for _ in $(seq 30); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  die "the node did not come up (sinfo: $(sinfo -h 2>&1 | head -1); see $DIR/*.log)"
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $0 start [--install] | stop   (--help for more)" >&2; exit 2 ;;
esac
