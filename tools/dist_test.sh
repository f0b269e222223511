#!/usr/bin/env bash
# Distributed testing with torchrun, on one machine or several.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Environment: as tools/dist_train.sh (NNODES, NODE_RANK, MASTER_ADDR, PORT,
# PYTHON).
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
need_args 3 "CONFIG CHECKPOINT GPUS [test.py options]" "$@"
# $1 CONFIG, $2 CHECKPOINT, $3 GPUS
dist_exec "$DIR/.." "$3" \
  "$DIR/test.py" "$1" "$2" --launcher pytorch "${@:4}"
