# Shared by the launch scripts (sourced, not run).
#
# need_args N USAGE ARGS...: exit 2 with "usage: SCRIPT USAGE" unless ARGS
# hold at least N arguments.
need_args() {
  local n=$1 usage=$2
  shift 2
  if [ $# -lt "$n" ]; then
    echo "usage: $0 $usage" >&2
    exit 2
  fi
}

# mmcached_python REPO: the Python that runs mmcached, without an activated
# environment: $PYTHON if set, else $MMCACHED_VENV/bin/python, else
# REPO/.venv/bin/python (what tools/setup_env.sh makes), else python3 on
# PATH.
mmcached_python() {
  local repo=$1
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
  elif [ -n "${MMCACHED_VENV:-}" ] && [ -x "$MMCACHED_VENV/bin/python" ]; then
    echo "$MMCACHED_VENV/bin/python"
  elif [ -x "$repo/.venv/bin/python" ]; then
    echo "$repo/.venv/bin/python"
  else
    command -v python3 || command -v python
  fi
}

# free_port PYTHON: a TCP port free on this machine now.
free_port() {
  "$1" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# slurm_gres_arg PARTITION GPUS_PER_NODE: the --gres option to pass: $GRES if
# set (empty: none), else gpu:GPUS_PER_NODE where the partition has GPUs and
# none where it has not (a CPU partition refuses a GPU request).
slurm_gres_arg() {
  local gres
  if [ -n "${GRES+x}" ]; then
    gres=$GRES
  elif sinfo -h -p "$1" -o %G 2>/dev/null | grep -q gpu; then
    gres=gpu:$2
  else
    gres=
  fi
  [ -n "$gres" ] && echo "--gres=$gres" || true
}

# dist_exec REPO GPUS SCRIPT [ARGS]: replace this shell with torchrun running
# SCRIPT ARGS in GPUS processes on this machine, with NNODES, NODE_RANK,
# MASTER_ADDR, PORT and PYTHON as tools/dist_train.sh describes them.
dist_exec() {
  local repo=$1 gpus=$2 py nnodes port
  shift 2
  py=$(mmcached_python "$repo")
  nnodes=${NNODES:-1}
  port=${PORT:-}
  if [ -z "$port" ]; then
    # every node must agree on the port: a free one only for a lone node
    if [ "$nnodes" = 1 ]; then port=$(free_port "$py"); else port=29500; fi
  fi
  PYTHONPATH="$repo:${PYTHONPATH:-}" exec "$py" -m torch.distributed.run \
    --nnodes="$nnodes" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$port" \
    --nproc_per_node="$gpus" "$@"
}

# slurm_exec PARTITION JOB_NAME REPO SCRIPT [ARGS]: replace this shell with
# srun running SCRIPT ARGS, with GPUS, GPUS_PER_NODE, CPUS_PER_TASK,
# SRUN_ARGS, GRES, OMP_NUM_THREADS and PYTHON as tools/slurm_train.sh
# describes them.
slurm_exec() {
  local partition=$1 job_name=$2 repo=$3 py gpus per_node cpus gres_arg
  shift 3
  py=$(mmcached_python "$repo")
  gpus=${GPUS:-8}
  per_node=${GPUS_PER_NODE:-8}
  cpus=${CPUS_PER_TASK:-5}
  gres_arg=$(slurm_gres_arg "$partition" "$per_node")
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$cpus}
  export PYTHONPATH="$repo:${PYTHONPATH:-}"
  # shellcheck disable=SC2086 # gres_arg and SRUN_ARGS are lists of options
  exec srun -p "$partition" --job-name="$job_name" $gres_arg \
    --ntasks="$gpus" --ntasks-per-node="$per_node" \
    --cpus-per-task="$cpus" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "$py" -u "$@"
}

# mmcv_build_progress LOG: how far the mmcv build that writes LOG has got:
# "k of N files compiled" from ninja's [k/N] counters (pip -v indents the
# build's output, so they need not start the line), "k files compiled"
# from the compiler calls of a build without ninja, else "starting".
mmcv_build_progress() {
  local last count
  last=$(grep -oE '^[[:space:]]*\[[0-9]+/[0-9]+\]' "$1" 2>/dev/null \
    | tail -n1 | tr -d '[:space:][]' || true)
  if [ -n "$last" ]; then
    echo "${last%/*} of ${last#*/} files compiled"
    return
  fi
  count=$(grep -cE '(^|[[:space:]/])(gcc|g\+\+|c\+\+|cc|clang\+\+|nvcc) .* -c ' \
    "$1" 2>/dev/null || true)
  if [ "${count:-0}" -gt 0 ]; then
    echo "$count files compiled"
  else
    echo "starting"
  fi
}
