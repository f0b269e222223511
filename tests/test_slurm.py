"""Slurm, for real: a one-node cluster started by .dev_scripts/slurm_local.sh
(Debian's slurm-wlm and munge; .ci/run starts one where it can), on which
tools/slurm_train.sh and tools/slurm_test.sh run 2 CPU tasks to completion,
and tools/slurm_train.sbatch, requeued mid-epoch as a preemption would,
comes back and ends bit-identical to the uninterrupted run. Skipped where
no such cluster runs."""
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
import torch
from test_exact_resume import (DIGITS, REPO, _config, _final,
                               assert_bit_identical)

CONF = os.environ.get('SLURM_CONF', '/tmp/mmcached-slurm/slurm.conf')


def _local_cluster():
    """Only the cluster of slurm_local.sh: never submit to a real one."""
    try:
        with open(CONF) as f:
            if 'ClusterName=mmcached-local' not in f.read():
                return False
        r = subprocess.run(['sinfo', '-h', '-p', 'cpu', '-o', '%t'],
                           env=dict(os.environ, SLURM_CONF=CONF),
                           capture_output=True,
                           text=True,
                           timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and 'idle' in r.stdout


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _local_cluster(),
        reason='no local Slurm cluster (bash .dev_scripts/slurm_local.sh '
        'start --install, as root)')
]


def _env(**extra):
    return dict(
        os.environ,
        SLURM_CONF=CONF,
        PYTHON=sys.executable,
        PYTHONPATH=osp.join(REPO, 'tests'),
        PYTHONWARNINGS='ignore',
        GPUS='2',
        GPUS_PER_NODE='2',
        CPUS_PER_TASK='1',
        **extra)


def _run(*cmd, **extra):
    r = subprocess.run(
        cmd,
        cwd=REPO,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r.stdout + r.stderr


def _squeue(job):
    return subprocess.run(['squeue', '-h', '-j', job, '-o', '%T'],
                          env=_env(),
                          capture_output=True,
                          text=True).stdout.strip()


def test_slurm_train_test_and_requeue(tmp_path):
    # 4 iterations per epoch on each of 2 tasks, a checkpoint every 3
    cfg = _config(
        tmp_path, DIGITS,
        'train_dataloader = dict(dataset=dict(indices=512))\n'
        'val_dataloader = dict(dataset=dict(indices=32))\n'
        'train_cfg = dict(max_epochs=2, val_interval=1)\n'
        'default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3))\n')
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')

    log = _run('bash', 'tools/slurm_train.sh', 'cpu', 'train', cfg, a)
    assert 'no CUDA device: using the gloo backend' in log
    assert_bit_identical(_final(a, 0)['model'], _final(a, 1)['model'])
    log = _run('bash', 'tools/slurm_test.sh', 'cpu', 'test', cfg,
               osp.join(a, 'iter_8.pth'), '--work-dir', osp.join(a, 'test'))
    assert re.search(r'Epoch\(test\).*accuracy/top1: [\d.]+', log)

    # the batch job, stopped in iteration 7 (after iter_6.pth, 2 batches
    # into epoch 2) and requeued: its second start resumes mid-epoch
    out = _run(
        'sbatch',
        '--parsable',
        '-p',
        'cpu',
        '--ntasks=2',
        '--cpus-per-task=1',
        f'--output={tmp_path}/job.out',
        'tools/slurm_train.sbatch',
        cfg,
        b,
        PROBE_PAUSE_AT='7')
    job = out.strip().split(';')[0]
    deadline = time.time() + 600
    while not osp.exists(osp.join(b, 'paused_rank0')):
        assert time.time() < deadline and _squeue(job), 'job did not start'
        time.sleep(1)
    _run('scontrol', 'requeue', job)
    while _squeue(job):
        assert time.time() < deadline, f'job {job} did not end'
        time.sleep(2)
    with open(tmp_path / 'job.out') as f:
        out = f.read()
    assert 'start 2 on' in out, out[-3000:]
    assert 'resumed epoch: 1, iter: 6' in out, out[-3000:]
    for rank in (0, 1):
        assert_bit_identical(_final(a, rank), _final(b, rank))
    ckpt = torch.load(osp.join(b, 'iter_8.pth'), weights_only=False)
    assert_bit_identical(ckpt['state_dict'], _final(a, 0)['model'])
