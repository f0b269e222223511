#!/usr/bin/env bash
# Set up (or refresh) a virtual environment with the OpenMMLab stack that
# mmcached is tested on, mmcv built from source with its compiled ops.
#
#   bash tools/setup_env.sh [--venv PATH] [--python PYTHON] [--verbose]
#
# Environment: MMCACHED_VENV (default <repo>/.venv), MMCACHED_WHEELHOUSE
# (default ~/.cache/mmcached/wheelhouse), MAX_JOBS (default: number of cores),
# FORCE_CUDA=1 to build mmcv's CUDA ops without a visible GPU.
# Running it again is cheap: pinned packages are already satisfied and the
# built mmcv wheel is reused from the wheelhouse (keyed by torch version and
# CUDA flavour, which pip's own cache does not do).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
source "$REPO/tools/common.sh"
VENV=${MMCACHED_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3.11}
WHEELHOUSE=${MMCACHED_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmcached/wheelhouse}
QUIET=-q
MMCV_VERSION=2.1.0

while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --venv=*) VENV=${1#*=}; shift ;;
    --python) PYTHON=$2; shift 2 ;;
    --python=*) PYTHON=${1#*=}; shift ;;
    --verbose|-v) QUIET=; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# pip, minus the machine-specific noise of file:// indexes that lack a package.
pip_install() {
  "$PY" -m pip install $QUIET --disable-pip-version-check "$@" \
    2> >(grep -v "^WARNING: Location 'file://" >&2)
}

main() {
  START=$(date +%s)
  step() { printf '\n[setup %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
  die() { printf '\n[setup] FAILED: %s\n' "$*" >&2; exit 1; }

  command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH; mmcached needs Python 3.11 (pass --python)."

  step "virtual environment: $VENV"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || die "could not create a venv at $VENV"
  fi
  PY="$VENV/bin/python"
  PIP=(pip_install)
  "${PIP[@]}" --upgrade pip -r "$REPO/requirements/build.txt" >/dev/null

  step "torch + torchvision (requirements/torch.txt)"
  "${PIP[@]}" -r "$REPO/requirements/torch.txt"

  # Which mmcv build fits this torch: CUDA ops when a GPU is visible (or
  # FORCE_CUDA=1), as mmcv's setup.py itself decides.
  read -r TORCH_KEY WITH_CUDA < <("$PY" -c "
import os, sys, torch
cuda = torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1'
flavour = f'cu{torch.version.cuda}' if (cuda and torch.version.cuda) else 'cpu'
print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}-{flavour}', int(cuda))")
  step "mmcv $MMCV_VERSION with compiled ops for $TORCH_KEY"
  WH_DIR="$WHEELHOUSE/mmcv-$MMCV_VERSION/$TORCH_KEY"
  mkdir -p "$WH_DIR"
  WHEEL=$(ls "$WH_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    echo "  no wheel in $WH_DIR: building from source."
    echo "  This takes about 12-15 minutes on 2 cores (longer with CUDA ops); it is done once per torch version."
    "$PY" -m pip download $QUIET --disable-pip-version-check --no-deps --no-binary mmcv \
        --no-build-isolation -d "$BUILD" "mmcv==$MMCV_VERSION" \
      || die "could not download the mmcv $MMCV_VERSION source distribution."
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv 2.1 hard-codes c++14/c++17.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$SRC/setup.py"
    grep -q -- '-std=c++20' "$SRC/setup.py" || die "could not patch mmcv's setup.py for C++20."
    export MMCV_WITH_OPS=1
    [ "$WITH_CUDA" = 1 ] && export FORCE_CUDA=1
    export MAX_JOBS=${MAX_JOBS:-$(nproc)}
    # No build isolation: an isolated build sees no torch and silently skips the ops.
    # -v shows ninja's [k/N] counters; print one line per compiled file.
    "$PY" -m pip wheel -v --disable-pip-version-check --no-deps --no-build-isolation \
        -w "$WH_DIR" "$SRC" > "$BUILD/build.log" 2>&1 &
    BUILD_PID=$!
    while kill -0 "$BUILD_PID" 2>/dev/null; do
      sleep 30
      echo "  mmcv build: $(( $(date +%s) - START ))s elapsed, $(mmcv_build_progress "$BUILD/build.log")"
    done
    wait "$BUILD_PID" || true
    WHEEL=$(ls "$WH_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$WHEEL" ]; then
      cp "$BUILD/build.log" "$WH_DIR/../build-failed-$TORCH_KEY.log" 2>/dev/null || true
      die "the mmcv build failed; the log is at $WH_DIR/../build-failed-$TORCH_KEY.log"
    fi
  else
    echo "  reusing $WHEEL"
  fi
  MARK="$VENV/.mmcached-mmcv-key"
  if [ "$(cat "$MARK" 2>/dev/null)" != "$TORCH_KEY" ]; then
    "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
    echo "$TORCH_KEY" > "$MARK"
  fi

  step "mmengine, mmdet, mmpretrain and their undeclared imports"
  # mmcv's own requirements (mmengine, opencv, ...) come with the pinned stack.
  "${PIP[@]}" -r "$REPO/requirements/mminstall.txt" -r "$REPO/requirements/runtime.txt" \
      -r "$REPO/requirements/tests.txt" -r "$REPO/requirements/lint.txt"
  # mim (`mim search mmcached`) without opendatalab, which would downgrade
  # setuptools, requests and tqdm; its other needs are in tests.txt
  "${PIP[@]}" --no-deps openmim

  step "mmcached (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$REPO"
  # A PEP 660 editable install leaves no mmcached/ in site-packages, where
  # mmengine resolves `_base_ = 'mmcached::...'` (via the distribution's
  # location); link it to the repo's package, as the old develop mode did.
  SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ ! -e "$SITE/mmcached" ] || [ -L "$SITE/mmcached" ]; then
    ln -sfn "$REPO/mmcached" "$SITE/mmcached"
  fi

  step "checking the environment"
  "$PY" "$REPO/tools/misc/check_env.py" || die "the environment check failed (see above)."
  step "done. Activate with: source $VENV/bin/activate"
}

# Parsed whole before it runs, so editing this file mid-run is harmless.
main
