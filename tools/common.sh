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
