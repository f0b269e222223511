"""Runner checkpoints load for resume and test on torch >= 2.6; unreadable
checkpoints give errors that name them; saves never half-write a file."""
import errno
import io
import multiprocessing as mp
import os
import os.path as osp
import signal
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, save_checkpoint
from torch.utils.data import Dataset

import mmcached  # noqa: F401 - applies the compat layer
from mmcached.models.layers import GRCAttention
from mmcached.utils import CheckpointError, fileio


class ToyData(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(
            x=torch.randn(8, 16, generator=g), y=torch.tensor(float(i % 2)))


class ToyModel(BaseModel):
    """A GRC layer and a linear head: the cache must survive save / resume."""

    def __init__(self):
        super().__init__()
        self.grc = GRCAttention(16, 2, cache_len=8, pos_conv=False)
        self.head = nn.Linear(16, 1)

    def forward(self, x, y, mode='tensor'):
        out = self.head(self.grc(x, x).mean(1)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - y)**2).mean())
        return out


def _runner(work_dir, max_iters, **kw):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        experiment_name=f'toy{max_iters}_{len(kw)}',
        **kw)


def test_runner_checkpoint_resumes(tmp_path):
    runner = _runner(tmp_path, 2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    assert osp.isfile(ckpt)
    if tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6):
        # What the compat layer is for: torch's own default refuses it.
        with pytest.raises(Exception):
            torch.load(ckpt)
    loaded = CheckpointLoader.load_checkpoint(ckpt, map_location='cpu')
    assert 'message_hub' in loaded and 'meta' in loaded
    cache = runner.model.grc.cache.memory.clone()
    assert cache.abs().sum() > 0, 'training must have written the cache'
    assert torch.equal(loaded['state_dict']['grc.cache.memory'], cache)

    resumed = _runner(tmp_path, 4, resume=True, load_from=ckpt)
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(tmp_path, 'iter_4.pth'))


def test_numpy_scalars_in_meta(tmp_path):
    path = tmp_path / 'np.pth'
    torch.save(
        dict(meta=dict(seed=np.int64(3), lr=np.float64(0.1)), state_dict={}),
        path)
    meta = CheckpointLoader.load_checkpoint(str(path))['meta']
    assert meta['seed'] == 3 and meta['lr'] == pytest.approx(0.1)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


def _checkpoint_bytes():
    buf = io.BytesIO()
    torch.save(
        dict(meta=dict(epoch=1), state_dict=dict(w=torch.ones(30000))), buf)
    return buf.getvalue()


def _zip_without_pickle(path):
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('images/a.txt', 'x')


@pytest.mark.parametrize(
    'make,message',
    [
        # cut short anywhere: in the header, the pickle, the tensor data
        # (20 kB of a larger file: a raw OSError from torch.load before), or
        # the central directory at the end
        (lambda p, d: p.write_bytes(d[:10]), 'truncated or corrupt'),
        (lambda p, d: p.write_bytes(d[:700]), 'truncated or corrupt'),
        (lambda p, d: p.write_bytes(d[:20000]), 'truncated or corrupt'),
        (lambda p, d: p.write_bytes(d[:-30]), 'truncated or corrupt'),
        (lambda p, d: p.write_bytes(b''), 'empty'),
        (lambda p, d: p.write_text('model = dict()\n'),
         'not a PyTorch checkpoint'),
        (lambda p, d: _zip_without_pickle(p), 'no data.pkl'),
        (lambda p, d: torch.save(torch.ones(2), p), 'holds a Tensor'),
        (lambda p, d: p.mkdir(), 'is a directory'),
    ])
def test_unreadable_checkpoint(tmp_path, make, message):
    path = tmp_path / 'epoch_2.pth'
    make(path, _checkpoint_bytes())
    (tmp_path / 'epoch_1.pth').write_bytes(_checkpoint_bytes())
    with pytest.raises(CheckpointError) as e:
        CheckpointLoader.load_checkpoint(str(path))
    assert message in str(e.value) and 'epoch_2.pth' in str(e.value)
    if message != 'is a directory':  # what to do: the other checkpoint
        assert 'epoch_1.pth' in str(e.value)


def test_resume_from_unreadable_checkpoint_names_it(tmp_path):
    _runner(tmp_path, 2).train()
    ckpt = tmp_path / 'iter_2.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match='iter_2.pth'):
        _runner(tmp_path, 4, resume=True).train()


class _FullDisk:
    """A file whose writes stop with ENOSPC half-way."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_full_disk_overwrites_nothing(tmp_path, monkeypatch):
    runner = _runner(tmp_path, 2)
    runner.train()
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last.endswith('iter_2.pth')
    fdopen = os.fdopen
    monkeypatch.setattr(fileio.os, 'fdopen',
                        lambda *a, **k: _FullDisk(fdopen(*a, **k)))
    with pytest.raises(OSError, match='nothing was overwritten'):
        _runner(tmp_path, 4, resume=True).train()
    monkeypatch.undo()
    # no half-written iter_4.pth, no temporary file left, and the work
    # dir's last_checkpoint still names a checkpoint that loads
    assert [p.name for p in tmp_path.glob('*.pth*')] == ['iter_2.pth']
    assert not list(tmp_path.glob('.*'))
    assert (tmp_path / 'last_checkpoint').read_text() == last
    assert CheckpointLoader.load_checkpoint(last)['meta']['iter'] == 2


def _save_then_die(path):
    # killed after writing, before the rename: a preemption mid-save
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
    save_checkpoint(dict(state_dict=dict(w=torch.zeros(1000))), path)


def test_killed_save_leaves_the_previous_file(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(dict(state_dict=dict(w=torch.ones(1000))), path)
    ctx = mp.get_context('fork')
    p = ctx.Process(target=_save_then_die, args=(path, ))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    w = CheckpointLoader.load_checkpoint(path)['state_dict']['w']
    assert torch.equal(w, torch.ones(1000))


def test_launchers_and_ddp_wrapped_once():
    """The CPU-safe wrappers are installed once, however often mmcached's
    compat layer is applied."""
    import mmengine.dist.utils as dist_utils
    from mmengine.model import MMDistributedDataParallel

    from mmcached.utils import compat
    before = [
        getattr(dist_utils, n)
        for n in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi')
    ]
    compat._applied = False
    compat.apply()
    after = [
        getattr(dist_utils, n)
        for n in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi')
    ]
    assert after == before
    assert all(f._mmcached_cpu_safe for f in after)
    assert MMDistributedDataParallel.__init__._mmcached_cpu_safe
    assert not hasattr(MMDistributedDataParallel.__init__.__wrapped__,
                       '_mmcached_cpu_safe')


def test_slurm_job_port(monkeypatch):
    """Without MASTER_PORT, a Slurm job's tasks agree on a port of its own
    (mmengine would use 29500 for every job)."""
    from mmcached.utils.compat import cpu_safe_launcher, slurm_master_port
    seen = {}

    def _init_dist_slurm(backend, port=None, **kwargs):
        seen.update(backend=backend, port=os.environ['MASTER_PORT'])

    monkeypatch.delenv('MASTER_PORT', raising=False)
    monkeypatch.setenv('SLURM_JOB_ID', '123457')
    cpu_safe_launcher(_init_dist_slurm)('nccl')
    assert seen['port'] == str(slurm_master_port('123457')) == '23457'
    if not torch.cuda.is_available():
        assert seen['backend'] == 'gloo'
