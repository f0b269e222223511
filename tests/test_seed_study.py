"""tools/analysis/seed_study.py (a 2-seed, 1-epoch smoke of the digits twins
on a few images, as CI runs it) and tools/analysis/cache_ablation.py on the
checkpoint it leaves."""
import csv
import json
import math
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'analysis', 'seed_study.py')


def _row(model, seed, top1):
    return dict(
        model=model, seed=seed, train_wall_s=1., **{'accuracy/top1': top1})


def test_summary_statistics(load_tool):
    tool = load_tool(TOOL)
    rows = [
        _row('cached', 0, 98.),
        _row('cached', 1, 97.),
        _row('cached', 2, 99.),
        _row('uncached', 0, 97.),
        _row('uncached', 1, 97.5),
        _row('uncached', 2, 97.)
    ]
    s = tool.summarise('digits', rows, [('cached', 'uncached')])
    top1 = s['models']['cached']['accuracy/top1']
    assert top1['values'] == [98., 97., 99.]
    assert top1['mean'] == pytest.approx(98.)
    assert top1['std'] == pytest.approx(1.)  # sample std (n - 1)
    (pair, ) = s['pairs']
    d = pair['accuracy/top1']
    assert pair['seeds'] == [0, 1, 2]
    assert d['diffs'] == pytest.approx([1., -0.5, 2.])
    assert d['mean'] == pytest.approx(2.5 / 3)
    assert d['wins'] == 2 and d['ties'] == 0
    # a pair is made of the seeds both models have
    s = tool.summarise('digits', rows[:-1], [('cached', 'uncached')])
    assert s['pairs'][0]['seeds'] == [0, 1]


def test_bad_arguments():
    for args, msg in [(['digits', '--models', 'cahced'], 'no model'),
                      (['digits', '--models', 'x=nothing.py'], 'no config'),
                      (['shapes', '--models', 'mc'], 'no model')]:
        r = subprocess.run([sys.executable, TOOL, *args],
                           cwd=REPO,
                           capture_output=True,
                           text=True)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


@pytest.mark.slow
def test_two_seeds_one_epoch(tmp_path):
    work = str(tmp_path / 'study')
    cmd = [
        sys.executable, TOOL, 'digits', '--models', 'cached', 'uncached',
        '--seeds', '0', '1', '--epochs', '1', '--jobs', '2', '--work-dir',
        work, '--cfg-options', 'train_dataloader.dataset.indices=64',
        'val_dataloader.dataset.indices=40'
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert 'cached - uncached, accuracy/top1' in r.stdout
    with open(osp.join(work, 'digits.csv')) as f:
        rows = list(csv.DictReader(f))
    assert sorted((x['model'], x['seed']) for x in rows) == [('cached', '0'),
                                                             ('cached', '1'),
                                                             ('uncached', '0'),
                                                             ('uncached', '1')]
    with open(osp.join(work, 'digits.json')) as f:
        summary = json.load(f)
    top1 = {(x['model'], int(x['seed'])): float(x['accuracy/top1'])
            for x in rows}
    assert all(math.isfinite(v) for v in top1.values())
    (pair, ) = summary['pairs']
    assert pair['accuracy/top1']['diffs'] == pytest.approx(
        [top1['cached', s] - top1['uncached', s] for s in (0, 1)])
    assert 'Xeon' in summary['machine'] or 'cores' in summary['machine']
    # the seeds gave different runs, each run recorded its seed
    for model in ('cached', 'uncached'):
        for seed in (0, 1):
            with open(
                    osp.join(work, 'digits', model, f'seed{seed}',
                             'embedded_result.json')) as f:
                assert json.load(f)['seed'] == seed
    # a second call finds every run done and only summarises
    again = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    with open(osp.join(work, 'digits.json')) as f:
        assert json.load(f)['pairs'] == summary['pairs']

    # the trained cached model, evaluated with its cache attention removed
    ckpt = osp.join(work, 'digits', 'cached', 'seed0', 'epoch_1.pth')
    out = str(tmp_path / 'ablation.json')
    r = subprocess.run([
        sys.executable, 'tools/analysis/cache_ablation.py',
        'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py', ckpt,
        '--work-dir',
        str(tmp_path / 'abl'), '--test-indices', '40', '--out', out
    ],
                       cwd=REPO,
                       capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out) as f:
        metrics = json.load(f)
    assert list(metrics) == [
        'trained', 'cache zeroed', 'cache attention 0', 'mix 0',
        'mix 0, no pos'
    ]
    assert all(math.isfinite(m['accuracy/top1']) for m in metrics.values())
