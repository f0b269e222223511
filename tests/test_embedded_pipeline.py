"""Train then test the embedded configs for a few iterations, through the
same tools a user runs: checkpoint, log and finite metrics must exist."""
import glob
import math
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CASES = {
    'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py':
    dict(n_train=128, n_test=60, metrics=['accuracy/top1']),
    'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py':
    dict(n_train=8, n_test=4, metrics=['coco/bbox_mAP', 'coco/segm_mAP']),
}


def run(*args):
    r = subprocess.run([sys.executable, *args],
                       cwd=REPO,
                       capture_output=True,
                       text=True,
                       timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    return r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(CASES))
def test_train_then_test(config, tmp_path):
    case = CASES[config]
    work = str(tmp_path / 'work')
    run('tools/train.py', config, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1', 'find_unused_parameters=True',
        f'train_dataloader.dataset.indices={case["n_train"]}')
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    assert glob.glob(osp.join(work, '*', '*.log')), 'no training log'

    out = run('tools/test.py', config, ckpt, '--work-dir', work, '--out',
              osp.join(work, 'results.pkl'), '--cfg-options',
              f'test_dataloader.dataset.indices={case["n_test"]}')
    assert osp.isfile(osp.join(work, 'results.pkl'))
    line = [ln for ln in out.splitlines() if 'Epoch(test)' in ln][-1]
    for name in case['metrics']:
        value = float(re.search(re.escape(name) + r': (-?[\d.]+)', line)[1])
        assert math.isfinite(value), (name, line)
