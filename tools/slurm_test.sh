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
slurm_exec "$PARTITION" "$JOB_NAME" "$DIR/.." \
  "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "$@"
