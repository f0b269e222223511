#!/usr/bin/env bash
# Training on a Slurm cluster with srun, on GPU or CPU partitions.
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# Environment:
#   GPUS (8), GPUS_PER_NODE (8): processes in all and per node (one per GPU;
#     on a CPU partition, processes per node that share its cores)
#   CPUS_PER_TASK (5), SRUN_ARGS (""): as in mmdet's and mmpretrain's scripts
#   GRES: what --gres asks for; default gpu:GPUS_PER_NODE where the partition
#     has GPUs (sinfo), nothing on a CPU partition; GRES= asks for nothing
#   OMP_NUM_THREADS (CPUS_PER_TASK): threads per process, so that processes
#     sharing a node do not each use all its cores
#   MASTER_PORT: default derived from the job id (two jobs on a node differ)
#   PYTHON: as tools/dist_train.sh
# For jobs that resume by themselves after preemption: tools/slurm_train.sbatch.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]" >&2; exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
slurm_exec "$PARTITION" "$JOB_NAME" "$DIR/.." \
  "$DIR/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"
