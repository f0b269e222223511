#!/usr/bin/env bash
# The embedded default, end to end on a CPU: set up whatever is missing, train
# a cached model on data made locally, test its last checkpoint, print metrics.
#
#   bash tools/run_embedded.sh [digits|digits-mc|shapes|digits-det|all]
#                              [--uncached]
#
#   digits     (default) ViT with GRC attention on scikit-learn's digits
#   digits-mc  the same ViT with Memory Caching in place of its attention
#   shapes     Mask R-CNN on a PVT with GRC attention, on generated
#              COCO-format shapes (bbox, segm)
#   digits-det the paper's protocol: a PVT with GRC attention pretrained as
#              a classifier on the digits, then Mask R-CNN fine-tuned from
#              it, caches reset, on canvases of several digits (bbox, segm)
#   all        the four
#   --uncached  the uncached twin of the same config(s), for comparison
# Work dirs: work_dirs/<config name>/ (checkpoint, logs, test visualisations).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMCACHED_VENV:-$REPO/.venv}
TASK=digits
UNCACHED=0
for arg in "$@"; do
  case "$arg" in
    digits|digits-mc|shapes|digits-det|all) TASK=$arg ;;
    --uncached) UNCACHED=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_embedded.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

main() {
  bash "$REPO/tools/setup_env.sh" --venv "$VENV"
  cd "$REPO"
  local digits=configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py
  local digits_mc=configs/embedded/mc-vit-mini-p8_1xb64-40e_digits.py
  local shapes=configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py
  # digits-det: the classifier, then the detector fine-tuned from it
  local digits_pre=configs/embedded/cached-pvt-mini_1xb64-40e_digits.py
  local digits_det=configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py
  local configs=()
  case "$TASK" in
    digits) configs=("$digits") ;;
    digits-mc) configs=("$digits_mc") ;;
    shapes) configs=("$shapes") ;;
    digits-det) configs=("$digits_pre" "$digits_det") ;;
    all) configs=("$digits" "$digits_mc" "$shapes" "$digits_pre" "$digits_det") ;;
  esac
  if [ "$UNCACHED" = 1 ]; then  # the twin: the same name without cached-/mc-
    configs=("${configs[@]/cached-/}")
    configs=("${configs[@]/mc-/}")
    digits_pre=${digits_pre/cached-/}
    digits_det=${digits_det/cached-/}
  fi
  local summary=() pretrained=""
  for cfg in "${configs[@]}"; do
    local name work start ckpt opts=()
    name=$(basename "$cfg" .py)
    work="work_dirs/$name"
    start=$(date +%s)
    if [ "$cfg" = "$digits_det" ]; then
      # the last checkpoint of the classifier trained just before
      opts=(--cfg-options "model.backbone.init_cfg.checkpoint=$pretrained")
      echo; echo "[embedded] fine-tuning from $pretrained"
    fi
    echo; echo "[embedded] training $cfg -> $work"
    "$VENV/bin/python" tools/train.py "$cfg" --work-dir "$work" ${opts[@]+"${opts[@]}"}
    ckpt=$(cat "$work/last_checkpoint")
    if [ "$cfg" = "$digits_pre" ]; then pretrained=$ckpt; fi
    echo; echo "[embedded] testing $ckpt"
    "$VENV/bin/python" tools/test.py "$cfg" "$ckpt" --work-dir "$work" \
      --show-dir "$REPO/$work/vis" 2>&1 | tee "$work/test.log"
    local metrics
    metrics=$(grep -E 'Epoch\(test\)' "$work/test.log" | tail -n1 | sed -E 's/.*Epoch\(test\) *\[[0-9]+\/[0-9]+\] *//; s/ *data_time:.*//')
    summary+=("$name: $metrics  ($(( $(date +%s) - start ))s, checkpoint $ckpt)")
  done
  echo; echo "[embedded] results"
  printf '  %s\n' "${summary[@]}"
}

main
