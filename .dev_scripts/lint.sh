#!/usr/bin/env bash
# Check the code against the project's lint and format settings (setup.cfg:
# flake8, isort, yapf, as the OpenMMLab toolboxes use them). With --fix,
# rewrite the files instead (isort, yapf), then check.
#   bash .dev_scripts/lint.sh [--fix]
# Environment: MMCACHED_VENV (default <repo>/.venv), set up by setup_env.sh.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMCACHED_VENV:-$REPO/.venv}
cd "$REPO"
mapfile -t FILES < <(git ls-files --cached --others --exclude-standard -- '*.py' ':!:mmcached/.mim/*')
if [ "${1:-}" = --fix ]; then
  "$VENV/bin/isort" -q "${FILES[@]}"
  "$VENV/bin/yapf" -i "${FILES[@]}"
fi
rc=0
echo "[lint] flake8";  "$VENV/bin/flake8" "${FILES[@]}" || rc=1
echo "[lint] isort";   "$VENV/bin/isort" --check-only --diff -q "${FILES[@]}" || rc=1
echo "[lint] yapf";    "$VENV/bin/yapf" --diff "${FILES[@]}" || rc=1
[ $rc = 0 ] && echo "[lint] clean" || echo "[lint] FAILED: run 'bash .dev_scripts/lint.sh --fix', then review the diff"
exit $rc
