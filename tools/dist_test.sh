#!/usr/bin/env bash
# Distributed testing with torchrun, on one machine or several.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Environment: as tools/dist_train.sh (NNODES, NODE_RANK, MASTER_ADDR, PORT,
# PYTHON).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2; exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/common.sh"
PY=$(mmcached_python "$DIR/..")
NNODES=${NNODES:-1}
if [ -z "${PORT:-}" ]; then
  if [ "$NNODES" = 1 ]; then PORT=$(free_port "$PY"); else PORT=29500; fi
fi
PYTHONPATH="$DIR/..:${PYTHONPATH:-}" exec "$PY" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$PORT" \
  --nproc_per_node="$GPUS" \
  "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
