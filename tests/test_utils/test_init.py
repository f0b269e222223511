"""mmcached.utils.init: a block on its own random stream, modules hidden
from the tree for a while, and init_cfg walks that skip isolated modules."""
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule

import mmcached  # noqa: F401 - installs the isolating initialize
from mmcached.utils.init import detached, isolated_rng, loads_checkpoint


def test_isolated_rng_leaves_the_stream_and_repeats():
    torch.manual_seed(0)
    plain = torch.rand(3)
    torch.manual_seed(0)
    with isolated_rng('a'):
        inside = torch.rand(5)
    assert torch.equal(torch.rand(3), plain)  # as if the block never drew
    torch.manual_seed(0)
    with isolated_rng('a'):
        assert torch.equal(torch.rand(5), inside)  # same seed, same draws
    torch.manual_seed(0)
    with isolated_rng('b'):
        assert not torch.equal(torch.rand(5), inside)  # the tag counts
    torch.manual_seed(1)
    with isolated_rng('a'):
        assert not torch.equal(torch.rand(5), inside)  # so does the seed


def test_detached_hides_and_restores():
    model = nn.Sequential(
        nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 3)))
    names = [n for n, _ in model.named_modules()]
    with detached(model, lambda m: isinstance(m, nn.Sequential)) as gone:
        assert [type(m) for m in gone] == [nn.Sequential]
        assert [n for n, _ in model.named_modules()] == ['', '0']
        assert len(model.state_dict()) == 2
    assert [n for n, _ in model.named_modules()] == names
    with pytest.raises(RuntimeError):
        with detached(model, lambda m: isinstance(m, nn.ReLU)):
            raise RuntimeError('restored all the same')
    assert [n for n, _ in model.named_modules()] == names


class _Isolated(BaseModule):
    init_isolated = True

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        nn.init.constant_(self.fc.weight, 7.)


class _Model(BaseModule):

    def __init__(self, init_cfg):
        super().__init__(init_cfg=init_cfg)
        self.a = nn.Linear(4, 4)
        self.iso = _Isolated()
        self.b = nn.Linear(4, 4)


def test_init_cfg_skips_isolated_modules():
    torch.manual_seed(0)
    model = _Model(dict(type='Constant', layer='Linear', val=1., bias=0.))
    model.init_weights()
    assert (model.a.weight == 1).all() and (model.b.weight == 1).all()
    assert (model.iso.fc.weight == 7).all()  # not reached
    # ... and a random init draws the same for a and b with or without it
    states = []
    for with_iso in (True, False):
        torch.manual_seed(0)
        model = _Model(dict(type='TruncNormal', layer='Linear', std=.02))
        if not with_iso:
            del model.iso
        model.init_weights()
        states.append((model.a.weight.clone(), model.b.weight.clone()))
    assert all(torch.equal(x, y) for x, y in zip(*states))


def test_loads_checkpoint():
    assert loads_checkpoint(dict(type='Pretrained', checkpoint='x'))
    assert loads_checkpoint([dict(type='Kaiming'), dict(type='Pretrained')])
    assert not loads_checkpoint(None)
    assert not loads_checkpoint([dict(type='TruncNormal', layer='Linear')])
