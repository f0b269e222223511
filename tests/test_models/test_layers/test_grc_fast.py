"""The fast nodes of GRC attention (mmcached.models.layers.grc_fast): each
gradchecked in float64, each equal to the plain ops (the switch flipped),
and used only where their stated conditions hold."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mmcached.models.layers import GRCAttention, grc_fast
from mmcached.models.layers.grc_fast import NODES, _HeadMix

MODES = ('released', 'paper')


def _randomise(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)


def _run(m, x, o_self, g, hw, mem):
    """One training step from cache ``mem``: output, cache, all grads."""
    m.cache.memory.copy_(mem)
    xi, oi = x.clone().requires_grad_(), o_self.clone().requires_grad_()
    out = m(xi, oi, hw)
    out.backward(g)
    res = [out, m.cache.memory.clone(), xi.grad, oi.grad] + \
        [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    return res


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('node', NODES)
def test_each_node_equals_plain_ops(mode, heads, node):
    """Training with one node on gives the plain ops' output, cache and
    every gradient (non-zero cache, sr, class token; one head takes the
    BLAS-dot gradient of the mixing weight)."""
    torch.manual_seed(0)
    m = GRCAttention(
        16,
        heads,
        cache_len=(4, 4),
        sr_ratio=2,
        mode=mode,
        pos_conv=True,
        num_extra_tokens=1).train()
    _randomise(m)
    mem = torch.randn_like(m.cache.memory)
    x, o_self, g = (torch.randn(3, 21, 16) for _ in range(3))
    with grc_fast.fast_path(False):
        plain = _run(m, x, o_self, g, (4, 5), mem)
    with grc_fast.fast_path([node]):
        fast = _run(m, x, o_self, g, (4, 5), mem)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('node', NODES)
def test_conditions_are_the_same_for_every_node(node):
    """On with grad, off without it, under autocast, when traced, with
    mixed dtypes, or when switched off."""
    a, b = torch.randn(2, 3), torch.randn(3)
    with grc_fast.fast_path(True):
        assert grc_fast.applies(node, a, b)
        assert not grc_fast.applies(node, a, b.double())
        assert not grc_fast.applies(node, a.long())
        with torch.no_grad():
            assert not grc_fast.applies(node, a, b)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not grc_fast.applies(node, a, b)
        seen = []
        torch.jit.trace(
            lambda t: seen.append(grc_fast.applies(node, t)) or t * 2, (a, ))
        assert seen and not any(seen)
    others = [n for n in NODES if n != node]
    with grc_fast.fast_path(others):
        assert not grc_fast.applies(node, a, b)


def test_switch_api_and_environment():
    with grc_fast.fast_path(False):
        assert grc_fast.enabled_nodes() == frozenset()
        with grc_fast.fast_path(','.join(NODES)):
            assert grc_fast.enabled_nodes() == set(NODES)
        assert grc_fast.enabled_nodes() == frozenset()
    with pytest.raises(ValueError, match='unknown GRC fast node'):
        grc_fast.set_fast_path(['head_mix', 'nope'])
    code = ('from mmcached.models.layers import grc_fast; '
            'print(sorted(grc_fast.enabled_nodes()))')
    for value, expected in (('0', '[]'), ('head_mix', "['head_mix']"),
                            ('1', str(sorted(NODES)))):
        env = dict(os.environ, MMCACHED_GRC_FAST=value)
        out = subprocess.run([sys.executable, '-c', code],
                             env=env,
                             capture_output=True,
                             text=True,
                             check=True)
        assert out.stdout.strip() == expected


# --------------------------------------------------------------------------
# Each node against numerical gradients (float64) and its plain value
# --------------------------------------------------------------------------
@pytest.mark.parametrize('pad', [True, False])
@pytest.mark.parametrize('extra', [True, False])
def test_head_mix_gradcheck(pad, extra):
    torch.manual_seed(0)
    o_self = torch.randn(2, 3, 2, 4, dtype=torch.float64, requires_grad=True)
    o_mem = torch.randn(
        2, 3, 2, 2 if pad else 4, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(2, dtype=torch.float64, requires_grad=True)
    args = [o_self, o_mem, alpha]
    if extra:
        args.append(
            torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(_HeadMix.apply, args)
    a = alpha.view(1, 1, 2, 1)
    ref = a * F.pad(o_mem, (0, 4 - o_mem.shape[-1])) + (1 - a) * o_self
    if extra:
        ref = ref + args[3].view_as(ref)
    torch.testing.assert_close(_HeadMix.apply(*args), ref)


@pytest.mark.parametrize('heads', [1, 2])
def test_head_mix_alpha_grad_fp32(heads):
    """fp32 takes a BLAS dot for one head: same gradients as autograd."""
    torch.manual_seed(0)
    o_self = torch.randn(2, 5, heads, 4, requires_grad=True)
    o_mem = torch.randn(2, 5, heads, 2, requires_grad=True)
    alpha = torch.rand(heads, requires_grad=True)
    g = torch.randn(2, 5, heads, 4)
    got = torch.autograd.grad((_HeadMix.apply(o_self, o_mem, alpha) * g).sum(),
                              (o_self, o_mem, alpha))
    a = alpha.view(1, 1, -1, 1)
    ref = a * F.pad(o_mem, (0, 2)) + (1 - a) * o_self
    exp = torch.autograd.grad((ref * g).sum(), (o_self, o_mem, alpha))
    for x, y in zip(got, exp):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
