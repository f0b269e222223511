#!/usr/bin/env bash
# Testing on a Slurm cluster with srun, on GPU or CPU partitions.
#   GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
# Environment: as tools/slurm_train.sh (GPUS, GPUS_PER_NODE, CPUS_PER_TASK,
# SRUN_ARGS, GRES, OMP_NUM_THREADS, MASTER_PORT, PYTHON).
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
need_args 4 "PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" "$@"
# $1 PARTITION, $2 JOB_NAME, $3 CONFIG, $4 CHECKPOINT
slurm_exec "$1" "$2" "$DIR/.." \
  "$DIR/test.py" "$3" "$4" --launcher=slurm "${@:5}"
