#!/usr/bin/env bash
# Set up whatever is missing (tools/setup_env.sh), then run the test suite.
#   bash tools/run_tests.sh [pytest options]     e.g. -k grc, tests/test_tools.py
# Environment: MMCACHED_VENV (default <repo>/.venv).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMCACHED_VENV:-$REPO/.venv}
bash "$REPO/tools/setup_env.sh" --venv "$VENV"
cd "$REPO"
echo
echo "[tests] $VENV/bin/python -m pytest tests $*"
set +e
"$VENV/bin/python" -m pytest tests -ra -q -p no:cacheprovider "$@"
rc=$?
set -e
# pytest's 5 means no test was collected: a broken suite, not a pass.
exit $rc
