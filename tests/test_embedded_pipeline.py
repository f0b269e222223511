"""Train then test the embedded configs for a few iterations, through the
same tools a user runs: checkpoint, log and finite metrics must exist."""
import glob
import math
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CASES = {
    'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py':
    dict(n_train=128, n_test=60, metrics=['accuracy/top1']),
    'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py':
    dict(n_train=8, n_test=4, metrics=['coco/bbox_mAP', 'coco/segm_mAP']),
}


@pytest.fixture
def run(run_python):
    """``run(*args)``: this Python with ARGS from the repository root, as
    ``run_python``; what it printed (stdout and stderr)."""

    def run(*args):
        r = run_python(*args)
        return r.stdout + r.stderr

    return run


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(CASES))
def test_train_then_test(config, tmp_path, run):
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


PRETRAIN = 'configs/embedded/cached-pvt-mini_1xb64-40e_digits.py'
FINETUNE = ('configs/embedded/'
            'mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py')


def _metric(out, name):
    line = [ln for ln in out.splitlines() if 'Epoch(' in ln and name in ln][-1]
    value = float(re.search(re.escape(name) + r': (-?[\d.]+)', line)[1])
    assert math.isfinite(value), (name, line)
    return value


def _check_backbone_loaded(ckpt):
    """The detector's backbone after init_weights: every weight the
    classifier's, every cache zero."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmcached.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, FINETUNE))
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    init_default_scope('mmdet')
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    pretrained = {
        k[len('backbone.'):]: v
        for k, v in state['state_dict'].items() if k.startswith('backbone.')
    }
    own = backbone.state_dict()
    assert set(own) == set(pretrained)
    caches = [k for k in own if k.endswith('.memory')]
    assert len(caches) == 4  # one cached layer per stage
    for k, v in own.items():
        if k in caches:
            assert pretrained[k].abs().sum() > 0, k  # trained ...
            assert not v.any(), k  # ... and reset
        else:
            assert torch.equal(v, pretrained[k]), k


@pytest.mark.slow
def test_pretrain_then_finetune_with_caches_reset(tmp_path, run):
    """The embedded paper protocol (tools/run_embedded.sh digits-det) for a
    few iterations: a classifier on the digits, then Mask R-CNN on the
    digit canvases from its backbone, caches reset, validated at the end
    (tools/test.py on this detector family is tested above)."""
    pre = str(tmp_path / 'pre')
    out = run('tools/train.py', PRETRAIN, '--work-dir', pre, '--cfg-options',
              'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=128',
              'val_dataloader.dataset.indices=60')
    assert 0 <= _metric(out, 'accuracy/top1') <= 100
    with open(osp.join(pre, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    assert osp.isfile(ckpt) and ckpt.endswith('epoch_1.pth')
    _check_backbone_loaded(ckpt)

    det = str(tmp_path / 'det')
    out = run('tools/train.py', FINETUNE, '--work-dir', det, '--cfg-options',
              'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8',
              'val_dataloader.dataset.indices=4',
              f'model.backbone.init_cfg.checkpoint={ckpt}')
    # The backbone loads the classifier's weights without a mismatch.
    assert f'from path: {ckpt}' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
    assert osp.isfile(osp.join(det, 'epoch_1.pth'))
    for name in ('coco/bbox_mAP', 'coco/segm_mAP'):
        _metric(out, name)
