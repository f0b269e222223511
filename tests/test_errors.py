"""Errors and reports that say what was meant: near misses of cache layer
arguments and types and of toolbox tool paths, a checkpoint lacking only
cache keys in one line, a missing backbone checkpoint named by its config
key, the mmcv build's progress line."""
import logging
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.models.backbones import PyramidVisionTransformer
from mmengine.config import Config
from mmpretrain.models.backbones import VisionTransformer

import mmcached  # noqa: F401 - compat fixes and registrations
from mmcached.models.backbones import CachedPVT, CachedViT
from mmcached.utils.cli import CLIError, check_backbone_checkpoint
from mmcached.utils.state_keys import LIST_ENV

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VIT = dict(
    arch=dict(
        embed_dims=16, num_layers=3, num_heads=2, feedforward_channels=32),
    img_size=32,
    patch_size=8)
PVT = dict(
    embed_dims=8,
    num_layers=[1, 1, 1, 1],
    mlp_ratios=[2] * 4,
    pretrain_img_size=64)


@pytest.mark.parametrize('cache_cfg,error,message', [
    (dict(type='GRCAttention', cache_ration=0.25), TypeError,
     "GRCAttention has no argument 'cache_ration'; did you mean cache_ratio"),
    (dict(type='MemoryCachingAttention',
          segment_sise=4), TypeError, 'did you mean segment_size'),
    (dict(type='GRCAtention'), KeyError, 'did you mean GRCAttention'),
    (dict(type='MemoryCachingAtention'), KeyError,
     'did you mean MemoryCachingAttention'),
    (dict(type='NoSuchLayer'), KeyError, 'register it with'),
])
def test_cache_cfg_near_misses(cache_cfg, error, message):
    with pytest.raises(error, match=message):
        CachedViT(**VIT, cache_cfg=cache_cfg)


def _toolbox():
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        return __import__('toolbox')
    finally:
        sys.path.pop(0)


def test_toolbox_tool_near_misses():
    toolbox = _toolbox()
    detection = 'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_' \
        'shapes.py'
    # with a config: the toolbox is known, the file is in another folder
    with pytest.raises(
            CLIError,
            match="mmdet has no tool 'misc/browse_dataset.py'; did you mean "
            'analysis_tools/browse_dataset.py') as e:
        toolbox.main(['misc/browse_dataset.py', detection])
    assert 'reinstall' not in str(e.value) and 'wheel' not in str(e.value)
    # without one: every toolbox's tools are candidates
    with pytest.raises(CLIError, match='did you mean .*get_flops.py'):
        toolbox.main(['analysis_tools/get_flop.py'])


def _capture():
    logger = logging.getLogger('mmcached.test_errors')
    logger.setLevel(logging.DEBUG)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.handlers = [handler]
    return logger, records


@pytest.mark.parametrize('list_keys', [False, True])
def test_checkpoint_without_cache_keys_in_one_line(tmp_path, monkeypatch,
                                                   list_keys):
    from mmengine.runner.checkpoint import load_state_dict
    monkeypatch.setenv(LIST_ENV, '1' if list_keys else '0')
    torch.manual_seed(0)
    plain = VisionTransformer(**VIT).state_dict()
    model = CachedViT(**VIT)
    logger, records = _capture()
    load_state_dict(model, plain, logger=logger)
    warnings = [r.getMessage() for r in records if r.levelno >= 30]
    cache_keys = [k for k in model.state_dict() if '.grc.' in k]
    assert warnings[0] == (
        f'the checkpoint has no cache keys: {len(cache_keys)} keys of 3 '
        'cache layers (layers.0.attn.grc, layers.1.attn.grc, '
        'layers.2.attn.grc) are newly initialised; every other key loaded. '
        f'{LIST_ENV}=1 (or log_level DEBUG) lists them')
    # the full list: at DEBUG, or with the summary when asked for
    full = [r for r in records if cache_keys[0] in r.getMessage()]
    assert len(full) == 1
    assert full[0].levelno == (logging.WARNING if list_keys else logging.DEBUG)
    assert len(warnings) == 1 + list_keys
    for k, v in plain.items():  # the rest did load
        torch.testing.assert_close(model.state_dict()[k], v)


def test_other_mismatches_are_logged_as_mmengine_does():
    from mmengine.runner.checkpoint import load_state_dict
    model = CachedViT(**VIT)
    state = VisionTransformer(**VIT).state_dict()
    state.pop('ln1.weight')  # a missing key that is not a cache key
    logger, records = _capture()
    load_state_dict(model, state, logger=logger)
    messages = [r.getMessage() for r in records]
    assert len(messages) == 1
    assert 'missing keys in source state_dict' in messages[0]
    assert 'ln1.weight' in messages[0] and 'layers.0.attn.grc' in messages[0]


def test_pretrained_pvt_backbone_reports_cache_keys_in_one_line(tmp_path):
    """Through a backbone's own init (mmdet's PVT binds load_state_dict by
    name; CachedPVT loads a classifier's 'backbone.' weights)."""
    from mmengine.logging import MMLogger
    path = str(tmp_path / 'pvt.pth')
    torch.save(
        dict(
            state_dict={
                'backbone.' + k: v
                for k, v in PyramidVisionTransformer(
                    **PVT).state_dict().items()
            }), path)
    model = CachedPVT(
        **PVT,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    current = MMLogger.get_current_instance()
    handler, seen = logging.Handler(), []
    handler.emit = seen.append
    current.handlers.append(handler)
    try:
        model.init_weights()
    finally:
        current.handlers.remove(handler)
    text = [r.getMessage() for r in seen]
    assert any(t.startswith('the checkpoint has no cache keys') for t in text)
    assert not any(
        t.startswith('The model and loaded state dict') and r.levelno >= 30
        for t, r in zip(text, seen))


def test_missing_backbone_checkpoint_names_the_key():
    config = osp.join(REPO,
                      'configs/pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py')
    cfg = Config.fromfile(config)
    with pytest.raises(CLIError) as e:
        check_backbone_checkpoint(cfg, config)
    message = str(e.value)
    assert message.startswith(
        "model.backbone.init_cfg.checkpoint 'work_dirs/cached-pvt-tiny_"
        "8xb128_in1k/epoch_300.pth' (the config variable 'checkpoint' in ")
    assert 'configs/pvt/cached-pvt-tiny_8xb128_in1k.py' in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in message
    # an existing checkpoint, or none to load, passes
    cfg.model.backbone.init_cfg.checkpoint = config
    check_backbone_checkpoint(cfg, config)
    cfg.model.backbone.init_cfg = None
    check_backbone_checkpoint(cfg, config)


def test_train_tool_stops_on_missing_backbone_checkpoint(tmp_path):
    r = subprocess.run([
        sys.executable, 'tools/train.py',
        'configs/pvtv2/mask-rcnn_cached-pvtv2-b2_fpn_1x_coco.py', '--work-dir',
        str(tmp_path / 'work')
    ],
                       cwd=REPO,
                       capture_output=True,
                       text=True,
                       timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert 'error: model.backbone.init_cfg.checkpoint' in r.stderr
    assert "the config variable 'checkpoint'" in r.stderr
    assert 'Traceback' not in r.stderr
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize(
    'log,expected',
    [
        # pip -v indents the build's output; ninja -v numbers each command
        # (the lines of a real mmcv 2.1.0 CPU build, 100 s in, paths cut)
        ("  running build_ext\n  building 'mmcv._ext' extension\n"
         '  creating /tmp/b/build/temp.linux-x86_64-cpython-311/mmcv/ops\n'
         '  [1/77] c++ -MMD -MF /tmp/b/build/active_rotated_filter.o.d '
         '-Wsign-compare -DNDEBUG -g -fwrapv -O3 -Wall -fPIC\n'
         '  [2/77] c++ -MMD -MF /tmp/b/build/assign_score_withk.o.d '
         '-Wsign-compare -DNDEBUG -g -fwrapv -O3 -Wall -fPIC\n',
         '2 of 77 files compiled'),
        ('[7/9] c++ -c x.cpp\n', '7 of 9 files compiled'),
        # without ninja: one compiler call per file
        ('running build_ext\n'
         '  gcc -pthread -fPIC -I/x -c ./mmcv/a.cpp -o a.o\n'
         '  g++ -pthread -c ./mmcv/b.cpp -o b.o\n', '2 files compiled'),
        ('Processing ./mmcv-2.1.0\n  Running command python setup.py\n',
         'starting'),
        ('', 'starting'),
    ])
def test_mmcv_build_progress(tmp_path, log, expected):
    path = tmp_path / 'build.log'
    path.write_text(log)
    r = subprocess.run(
        ['bash', '-c', f'source tools/common.sh; mmcv_build_progress {path}'],
        cwd=REPO,
        capture_output=True,
        text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected
