"""Runner checkpoints load for resume and test on torch >= 2.6."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import mmcached  # noqa: F401 - applies the compat layer
from mmcached.models.layers import GRCAttention


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


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / 'bad.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='truncated, corrupt'):
        CheckpointLoader.load_checkpoint(str(path))
