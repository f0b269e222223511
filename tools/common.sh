# Shared by the launch scripts (sourced, not run).
#
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
