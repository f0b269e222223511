"""The cache tools on checkpoints made by a few iterations of the embedded
configs (trained once for this module): CacheStatsHook's scalars in the
run's logs, visualize_cache.py's figures, benchmark.py's table and the
complexity plot of grc_complexity_table.py."""
import glob
import json
import math
import os.path as osp
import re
import struct

import pytest
import torch

from mmcached.utils.cli import CLIError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VISUALIZE = 'tools/analysis/visualize_cache.py'
BENCHMARK = 'tools/analysis/benchmark.py'
CLS = 'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py'
DET = 'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'
# the layer names the hook and the tools use for each embedded model
LAYERS = {
    CLS: [f'layer{i}' for i in range(4)],
    DET: [f'stage{i}.layer0' for i in range(4)]
}
# training images: 2 iterations of 64 (cls), 1 of 4 (det)
IMAGES = {CLS: 128, DET: 4}


@pytest.fixture(scope='module')
def trained(tmp_path_factory, run_python):
    """config -> work dir of a short training (logged every iteration, no
    validation)."""
    works = {}
    for config, n in IMAGES.items():
        work = str(tmp_path_factory.mktemp('work'))
        run_python('tools/train.py', config, '--work-dir', work,
                   '--cfg-options', 'train_cfg.max_epochs=1',
                   f'train_dataloader.dataset.indices={n}',
                   'default_hooks.logger.interval=1', 'val_cfg=None',
                   'val_dataloader=None', 'val_evaluator=None')
        assert osp.isfile(osp.join(work, 'epoch_1.pth'))
        works[config] = work
    return works


def _json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize('config', [CLS, DET])
def test_hook_scalars_in_vis_data(trained, config):
    vis = glob.glob(osp.join(trained[config], '*', 'vis_data', '*.json'))
    logs = [p for p in vis if not p.endswith('scalars.json')]
    assert len(logs) == 1 and any(p.endswith('scalars.json') for p in vis)
    for path in vis:  # the logger's file and the LocalVisBackend's
        train = [r for r in _json_lines(path) if 'loss' in r]
        assert train
        for rec in train:
            keys = sorted(k for k in rec if k.startswith('cache_'))
            expected = sorted(f'cache_{stat}/{layer}'
                              for stat in ('mix', 'rms', 'update_rms')
                              for layer in LAYERS[config])
            assert keys == expected, path
            assert all(math.isfinite(rec[k]) for k in keys)
            for layer in LAYERS[config]:
                assert 0 < rec[f'cache_mix/{layer}'] < 1
                assert rec[f'cache_rms/{layer}'] > 0
                assert rec[f'cache_update_rms/{layer}'] > 0


def _png_size(path):
    """(width, height) of a PNG file, checking its signature and header."""
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR', path
    return struct.unpack('>II', head[16:24])


def _check_png(path, size):
    import matplotlib.image as mpimg
    assert _png_size(path) == size, path
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == size[::-1] and pixels.std() > 0, path


@pytest.mark.slow
def test_visualize_cache_classification(trained, monkeypatch, capsys,
                                        load_tool):
    monkeypatch.chdir(REPO)
    tool = load_tool(VISUALIZE)
    out = str(trained[CLS] + '/vis')
    tool.main([CLS, trained[CLS] + '/epoch_1.pth', '--out-dir', out])
    printed = [
        p for p in capsys.readouterr().out.split() if p.endswith('.png')
    ]
    names = ['mix_weights', 'attention_outputs', 'cache_pca']
    assert printed == [osp.join(out, n + '.png') for n in names]
    # figure sizes as the tool sets them (inches at its 100 dpi), for the
    # 4 cached layers, all of them shown
    _check_png(printed[0], (900, 340))
    _check_png(printed[1], (750, 1020))
    _check_png(printed[2], (1100, 320))


@pytest.mark.slow
def test_visualize_cache_detection_cli(trained, run_python):
    """The command line on a detector, for an image file and one layer."""
    img = sorted(glob.glob(osp.join(REPO, 'data/shapes/val/*')))[0]
    out = trained[DET] + '/vis'
    printed = run_python(VISUALIZE, DET, trained[DET] + '/epoch_1.pth',
                         '--img', img, '--layers', 'stage0.layer0',
                         '--out-dir', out).stdout.split()
    paths = [p for p in printed if p.endswith('.png')]
    assert [osp.basename(p) for p in paths
            ] == ['mix_weights.png', 'attention_outputs.png', 'cache_pca.png']
    _check_png(paths[0], (900, 340))
    _check_png(paths[1], (750, 300))  # one row: the chosen layer
    _check_png(paths[2], (320, 320))


@pytest.mark.slow
def test_visualize_cache_refuses_what_it_cannot_read(trained, tmp_path,
                                                     monkeypatch, load_tool):
    monkeypatch.chdir(REPO)
    tool = load_tool(VISUALIZE)
    ckpt = trained[CLS] + '/epoch_1.pth'
    uncached = CLS.replace('cached-', '')
    with pytest.raises(CLIError, match='builds no cache layer'):
        tool.main([uncached, ckpt, '--out-dir', str(tmp_path)])
    # an uncached model's checkpoint given with the cached config
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(uncached).model)
    path = str(tmp_path / 'uncached.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    with pytest.raises(CLIError, match='no weights for 4 of the 4 cache'):
        tool.main([CLS, path, '--out-dir', str(tmp_path)])
    with pytest.raises(CLIError, match="unknown \\['layer9'\\]"):
        tool.main(
            [CLS, ckpt, '--layers', 'layer9', '--out-dir',
             str(tmp_path)])
    with pytest.raises(CLIError, match='does not exist'):
        tool.main(
            [CLS, ckpt, '--img', 'nowhere.png', '--out-dir',
             str(tmp_path)])


def _table(out):
    """Rows of benchmark.py's Markdown table: name -> numbers."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r'\| (uncached|cached|cached / uncached) \|(.*)\|$', line)
        if m:
            rows[m[1]] = [float(v) for v in m[2].split('|')]
    return rows


@pytest.mark.slow
@pytest.mark.parametrize('config,size,batch', [(CLS, '32', '4'),
                                               (DET, '64', '1')])
def test_benchmark(config, size, batch, capsys, monkeypatch, load_tool):
    monkeypatch.chdir(REPO)
    tool = load_tool(BENCHMARK)
    # (the memory pass before the timed rounds warms up as well)
    tool.main([
        config, '--batch-size', batch, '--img-size', size, '--rounds', '3',
        '--warmup', '0'
    ])
    out = capsys.readouterr().out
    assert osp.basename(config.replace('cached-', '')) in out  # twin found
    rows = _table(out)
    assert set(rows) == {'uncached', 'cached', 'cached / uncached'}
    (tr_u, te_u, fl_u, mem_u), (tr_c, te_c, fl_c, mem_c) = \
        rows['uncached'], rows['cached']
    values = rows['uncached'] + rows['cached'] + rows['cached / uncached']
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert fl_c > fl_u and mem_c > mem_u  # the cache costs FLOPs, memory
    ratios = rows['cached / uncached']
    assert ratios[0] == pytest.approx(tr_c / tr_u, rel=2e-2)
    assert ratios[1] == pytest.approx(te_c / te_u, rel=2e-2)
    assert ratios[2] == pytest.approx(fl_c / fl_u, rel=2e-2) and ratios[2] > 1
    assert 0 < ratios[0] < 2 and 0 < ratios[1] < 2


def test_benchmark_twin_errors(tmp_path, monkeypatch, load_tool):
    monkeypatch.chdir(REPO)
    tool = load_tool(BENCHMARK)
    assert tool.find_twin(CLS) == CLS.replace('cached-', '')
    mc = 'configs/pvtv2/retinanet_mc-pvtv2-b2_fpn_1x_coco.py'
    assert tool.find_twin(mc) == mc.replace('mc-', '')
    with pytest.raises(CLIError, match="no 'cached-' or 'mc-' in its name"):
        tool.find_twin(CLS.replace('cached-', ''))
    lone = tmp_path / 'cached-lone.py'
    lone.write_text(f"_base_ = '{osp.join(REPO, CLS)}'\n")
    with pytest.raises(CLIError, match='twin .*lone.py does not exist'):
        tool.find_twin(str(lone))
    with pytest.raises(CLIError, match='not an uncached twin'):
        tool.main([CLS, '--twin', CLS, '--skip-flops'])


def test_tools_build_the_model_as_the_runner_does():
    """The config's top-level data_preprocessor (normalisation, classes)
    reaches the model, as Runner.from_cfg merges it."""
    from mmengine.config import Config

    from mmcached.utils.runner_model import build_runner_model
    model = build_runner_model(Config.fromfile(osp.join(REPO, CLS)))
    pre = model.data_preprocessor
    assert pre.mean.flatten().tolist() == [127.5] * 3
    assert pre.std.flatten().tolist() == [127.5] * 3
    assert pre.num_classes == 10


@pytest.mark.slow
def test_cache_curves_reach_tensorboard(tmp_path, run_python):
    """The README's TensorBoard snippet: the hook's scalars are in the
    event file (runs where the optional tensorboard is installed)."""
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    config = tmp_path / 'digits_tb.py'
    config.write_text(f"_base_ = '{osp.join(REPO, CLS)}'\n"
                      'visualizer = dict(vis_backends=[\n'
                      "    dict(type='LocalVisBackend'),\n"
                      "    dict(type='TensorboardVisBackend')\n"
                      '])\n')
    work = str(tmp_path / 'work')
    run_python('tools/train.py', str(config), '--work-dir', work,
               '--cfg-options', 'train_cfg.max_epochs=1',
               'train_dataloader.dataset.indices=128',
               'default_hooks.logger.interval=1', 'val_cfg=None',
               'val_dataloader=None', 'val_evaluator=None')
    events = glob.glob(osp.join(work, '*', 'vis_data', 'events.out.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0])
    acc.Reload()
    for layer in LAYERS[CLS]:
        for stat in ('mix', 'rms', 'update_rms'):
            values = acc.Scalars(f'cache_{stat}/{layer}')
            assert [v.step for v in values] == [1, 2]
            assert all(math.isfinite(v.value) for v in values)
