#!/usr/bin/env bash
# Distributed training with torchrun, on one machine or several.
#   bash tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS: processes on this machine (one per GPU; on CPU, e.g. 2 with gloo).
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (a
# free port on one machine; 29500 with NNODES > 1: every node must use the
# same), PYTHON (default: $MMCACHED_VENV/bin/python, then the repository's
# .venv, then python3 on PATH).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG GPUS [train.py options]" >&2; exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
dist_exec "$DIR/.." "$GPUS" \
  "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
