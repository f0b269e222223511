#!/usr/bin/env bash
# Testing on a Slurm cluster with srun, on GPU or CPU partitions.
#   GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
# Environment: as tools/slurm_train.sh (GPUS, GPUS_PER_NODE, CPUS_PER_TASK,
# SRUN_ARGS, GRES, OMP_NUM_THREADS, MASTER_PORT, PYTHON).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" >&2; exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
PY=$(mmcached_python "$DIR/..")
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES_ARG=$(slurm_gres_arg "$PARTITION" "$GPUS_PER_NODE")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK}
export PYTHONPATH="$DIR/..:${PYTHONPATH:-}"
# shellcheck disable=SC2086 # GRES_ARG and SRUN_ARGS are lists of options
exec srun -p "$PARTITION" --job-name="$JOB_NAME" $GRES_ARG \
  --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PY" -u "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "$@"
