"""Launches and exact resume, run as a user runs them: tools/train.py and
tools/dist_train.sh (2 gloo processes on CPU) on the embedded configs, a
run killed with SIGKILL mid-epoch and resumed with --resume, compared bit
for bit with an uninterrupted run (tests/probe_hooks.py records what each
rank did and holds)."""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS = osp.join(REPO,
                  'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py')
SHAPES = osp.join(
    REPO, 'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py')
NO_VALIDATION = 'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'


def _config(tmp_path, base, body):
    path = tmp_path / 'probe_config.py'
    path.write_text(
        f'_base_ = {base!r}\n'
        "custom_imports = dict(imports=['mmcached', 'probe_hooks'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='ExactResumeHook'), "
        "dict(type='ProbeHook')]\n" + body)
    return str(path)


def _launch(config, work, *args, nproc=1, kill_at=None, tool='train'):
    """Popen of tools/{tool}.py (nproc 1) or tools/dist_{tool}.sh."""
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        # probe_hooks, and what the caller has on its path
        PYTHONPATH=os.pathsep.join(
            [osp.join(REPO, 'tests')] +
            [p for p in [os.environ.get('PYTHONPATH')] if p]),
        PYTHONWARNINGS='ignore')
    env.pop('PROBE_KILL_AT', None)
    if kill_at is not None:
        env['PROBE_KILL_AT'] = str(kill_at)
    if nproc == 1:
        cmd = [sys.executable, f'tools/{tool}.py', config, *args]
    elif tool == 'train':
        cmd = ['bash', 'tools/dist_train.sh', config, str(nproc), *args]
    else:
        cmd = [
            'bash', 'tools/dist_test.sh', config, args[0],
            str(nproc), *args[1:]
        ]
    if tool == 'train':
        cmd += ['--work-dir', str(work)]
    log = f'{work}.{tool}.log'
    with open(log, 'a') as f:
        # a session of its own: every process of the run is found by it
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True)
    proc.log = log
    return proc


def _wait(proc, ok=True):
    rc = proc.wait(timeout=900)
    with open(proc.log) as f:
        log = f.read()
    if ok:
        assert rc == 0, log[-4000:]
    return log


def _session(pid):
    """The session of a live process (not a zombie), else None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in 'ZX' else int(fields[3])


def assert_nothing_survives(proc, timeout=20):
    """No process of the run ``proc`` started (its session: the launcher,
    ranks, dataloader workers) is alive once ``proc`` has ended."""
    deadline = time.time() + timeout
    while True:
        left = [
            int(p) for p in os.listdir('/proc')
            if p.isdigit() and _session(p) == proc.pid
        ]
        if not left or time.time() > deadline:
            break
        time.sleep(0.2)
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == [], f'processes of the killed run survive: {left}'


def _flat(x, prefix=''):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _flat(v, f'{prefix}.{k}')
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _flat(v, f'{prefix}.{i}')
    else:
        yield prefix, x


def assert_bit_identical(a, b):
    """Every tensor equal (torch.equal) and every other value equal."""
    fa, fb = dict(_flat(a)), dict(_flat(b))
    assert fa.keys() == fb.keys()
    for k, v in fa.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v,
                               fb[k]), (k, (v.double() -
                                            fb[k].double()).abs().max().item())
        else:
            assert v == fb[k], (k, v, fb[k])


def _final(work, rank=0):
    return torch.load(
        osp.join(work, f'final_rank{rank}.pth'), weights_only=False)


def _records(work, rank=0):
    with open(osp.join(work, f'probe_rank{rank}.jsonl')) as f:
        return [json.loads(line) for line in f]


def assert_resumed_exactly(a, b, ranks, resumed_at, total):
    """Run b was killed and resumed; a ran uninterrupted."""
    for rank in ranks:
        assert _final(a, rank)['iter'] == total
        assert_bit_identical(_final(a, rank), _final(b, rank))
        # every iteration b trained (before the kill and after the resume,
        # the killed ones twice): same samples, same augmented images
        by_iter = {r['iter']: r for r in _records(a, rank)}
        done = _records(b, rank)
        assert len(done) > total  # the iterations lost to the kill, redone
        assert {r['iter'] for r in done} == set(range(1, total + 1))
        for r in done:
            assert r == by_iter[r['iter']], r['iter']
    resumed = [r['iter'] for r in _records(b, ranks[0])]
    assert resumed.count(resumed_at + 1) == 2


def _cache_keys(state):
    keys = [k for k in state if k.endswith('cache.memory')]
    assert keys
    return keys


# One process, killed mid-epoch: the config, its training images and
# epochs, a checkpoint every ``interval`` iterations, the iteration killed;
# the iteration it resumes from, its epoch's batches already done (of
# all), the iterations in all.
MID_EPOCH = {
    # 4 iterations per epoch, a checkpoint every 3; killed in iteration 7
    # (epoch 2), it resumes from iter_6.pth, 2 batches into epoch 2
    'digits': (DIGITS, 256, 3, 3, 7, 6, '2 of its 4', 12),
    # Mask R-CNN, one dataloader worker: 3 iterations per epoch, a
    # checkpoint every 2; killed in iteration 5, it resumes from
    # iter_4.pth, 1 batch into epoch 2 (the worker re-draws the skipped
    # batch's augmentations)
    'shapes': (SHAPES, 12, 2, 2, 5, 4, '1 of its 3', 6),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(MID_EPOCH))
def test_resume_mid_epoch_is_exact(case, tmp_path):
    """A run killed (SIGKILL) mid-epoch and resumed from its last
    checkpoint by iterations ends as the uninterrupted run, every iteration
    as there (MID_EPOCH)."""
    (base, images, epochs, interval, kill_at, resumed_at, batches,
     total) = MID_EPOCH[case]
    cfg = _config(
        tmp_path, base,
        f'train_dataloader = dict(dataset=dict(indices={images}))\n'
        f'train_cfg = dict(max_epochs={epochs})\n' + NO_VALIDATION +
        'default_hooks = dict(checkpoint=dict(by_epoch=False, '
        f'interval={interval}))\n')
    a, b = tmp_path / 'a', tmp_path / 'b'
    run_a = _launch(cfg, a)
    run_b = _launch(cfg, b, kill_at=kill_at)
    _wait(run_a)
    assert run_b.wait(timeout=900) == -9  # SIGKILL
    assert_nothing_survives(run_b)
    log = _wait(_launch(cfg, b, '--resume'))
    assert f'resumed epoch: 1, iter: {resumed_at}' in log
    assert f'({batches} batches)' in log
    assert_resumed_exactly(
        str(a), str(b), [0], resumed_at=resumed_at, total=total)


@pytest.mark.slow
def test_dist_train_and_test_two_ranks(tmp_path):
    """tools/dist_train.sh with 2 gloo processes on CPU: the run completes,
    both ranks hold bit-identical weights and caches (those of the
    checkpoint), tools/dist_test.sh tests it; killed mid-epoch 3 and resumed
    from epoch_2.pth (after validation), each rank ends as in the
    uninterrupted run."""
    cfg = _config(
        tmp_path, DIGITS,
        'train_dataloader = dict(dataset=dict(indices=256))\n'
        'val_dataloader = dict(dataset=dict(indices=32))\n'
        'train_cfg = dict(max_epochs=3, val_interval=1)\n'
        'default_hooks = dict(checkpoint=dict(interval=1))\n')
    a, b = tmp_path / 'a', tmp_path / 'b'
    _wait(_launch(cfg, a, nproc=2))
    rank0, rank1 = _final(a, 0)['model'], _final(a, 1)['model']
    assert_bit_identical(rank0, rank1)
    ckpt = torch.load(a / 'epoch_3.pth', weights_only=False)
    assert_bit_identical(ckpt['state_dict'], rank0)
    caches = [rank0[k] for k in _cache_keys(rank0)]
    assert all(c.abs().sum() > 0 for c in caches)  # training wrote them

    test = _launch(
        cfg,
        a,
        str(a / 'epoch_3.pth'),
        '--work-dir',
        str(a / 'test'),
        nproc=2,
        tool='test')
    line = [ln for ln in _wait(test).splitlines() if 'Epoch(test)' in ln][-1]
    assert float(re.search(r'accuracy/top1: ([\d.]+)', line)[1]) >= 0

    killed = _launch(cfg, b, nproc=2, kill_at=5)
    assert killed.wait(timeout=900) != 0
    assert_nothing_survives(killed)
    log = _wait(_launch(cfg, b, '--resume', nproc=2))
    assert 'resumed epoch: 2, iter: 4' in log
    assert_resumed_exactly(str(a), str(b), [0, 1], resumed_at=4, total=6)
