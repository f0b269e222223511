#!/usr/bin/env bash
# Distributed training with torchrun, on one machine or several.
#   bash tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS: processes on this machine (one per GPU; on CPU, e.g. 2 with gloo).
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (a
# free port on one machine; 29500 with NNODES > 1: every node must use the
# same), PYTHON (default: $MMCACHED_VENV/bin/python, then the repository's
# .venv, then python3 on PATH).
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
need_args 2 "CONFIG GPUS [train.py options]" "$@"
# $1 CONFIG, $2 GPUS
dist_exec "$DIR/.." "$2" "$DIR/train.py" "$1" --launcher pytorch "${@:3}"
