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
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
need_args 4 "PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]" "$@"
# $1 PARTITION, $2 JOB_NAME, $3 CONFIG, $4 WORK_DIR
slurm_exec "$1" "$2" "$DIR/.." \
  "$DIR/train.py" "$3" --work-dir="$4" --launcher=slurm "${@:5}"
