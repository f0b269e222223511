"""The fused path of GRC attention (mmcached.models.layers.grc.fused) against
the plain path, the reference: the switch flipped, outputs, caches and every
gradient compared (float32 and float64); each node gradchecked in float64;
the conditions under which the layer falls back to the plain path; the
switch's API and environment variable."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mmcached.models.layers import GRCAttention
from mmcached.models.layers.grc import fused as grc_fused
from mmcached.models.layers.grc.switch import (ENV_VAR, fused_grc,
                                               set_fused_grc, use_fused_grc)

MODES = ('released', 'paper')
TOL = {
    torch.float32: dict(rtol=1e-5, atol=2e-5),
    torch.float64: dict(rtol=1e-10, atol=1e-12)
}

# (heads, cache_ratio, cache_len, sr_ratio, hw, extra tokens)
CASES = [
    (1, 0.5, (4, 4), 2, (4, 4), 0),  # PVT stage 1-like: 1 head, folded proj
    (2, 0.5, (4, 4), 2, (4, 5), 0),  # tokens resized to the cache
    (2, 0.5, 17, 1, (4, 4), 1),  # class token
    (2, 0.25, (4, 4), 2, (4, 4), 1),  # 4 channels per positional group
    (2, 1.0, 12, 1, (3, 4), 0),  # depthwise positional conv: plain conv
]


def _layer(mode, heads, ratio, cache_len, sr, extra, dtype=torch.float32):
    torch.manual_seed(0)
    m = GRCAttention(
        16,
        heads,
        cache_len=cache_len,
        cache_ratio=ratio,
        sr_ratio=sr,
        mode=mode,
        pos_conv=True,
        num_extra_tokens=extra).to(dtype).train()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


def _step(m, x, o_self, g, hw, mem, grad_x=True, grad_o=True):
    """One training step from cache ``mem``: output, new cache and every
    gradient (None where there is none)."""
    m.cache.memory.copy_(mem)
    xi = x.clone().requires_grad_(grad_x)
    oi = o_self.clone().requires_grad_(grad_o)
    out = m(xi, oi, hw)
    out.backward(g)
    res = [out.detach(), m.cache.memory.clone(), xi.grad, oi.grad]
    res += [None if p.grad is None else p.grad.clone() for p in m.parameters()]
    m.zero_grad(set_to_none=True)
    return res


def _assert_same(fast, plain, dtype):
    assert len(fast) == len(plain)
    for i, (a, b) in enumerate(zip(fast, plain)):
        assert (a is None) == (b is None), i
        if a is not None:
            torch.testing.assert_close(a, b, **TOL[dtype], msg=str(i))


class _Spy:
    """Counts the fused layer forwards."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = grc_fused.forward

        def spy(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(grc_fused, 'forward', spy)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('mode', MODES)
def test_fused_equals_plain(mode, case, dtype, monkeypatch):
    """Training steps with the switch on and off: the same output, cache
    and gradients of the inputs and of every parameter (non-empty cache)."""
    heads, ratio, cache_len, sr, hw, extra = case
    m = _layer(mode, heads, ratio, cache_len, sr, extra, dtype)
    mem = torch.randn_like(m.cache.memory)
    n = extra + hw[0] * hw[1]
    x, o_self, g = (torch.randn(3, n, 16, dtype=dtype) for _ in range(3))
    spy = _Spy(monkeypatch)
    with fused_grc(False):
        plain = _step(m, x, o_self, g, hw, mem)
    assert spy.calls == 0
    with fused_grc(True):
        fast = _step(m, x, o_self, g, hw, mem)
    assert spy.calls == 1
    _assert_same(fast, plain, dtype)


@pytest.mark.parametrize('mode', MODES)
def test_fused_equals_plain_in_eval(mode, monkeypatch):
    """The frozen-cache forward (eval, no grad) takes the fused path too."""
    m = _layer(mode, 2, 0.5, (4, 4), 2, 0)
    m.cache.memory.normal_()
    m.eval()
    x, o_self = torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    spy = _Spy(monkeypatch)
    with torch.no_grad():
        with fused_grc(False):
            plain = m(x, o_self, (4, 4))
        with fused_grc(True):
            fast = m(x, o_self, (4, 4))
    assert spy.calls == 1
    torch.testing.assert_close(fast, plain, **TOL[torch.float32])


@pytest.mark.parametrize('frozen', [
    'inputs', 'x', 'o_self', 'cache', 'lam', 'mem_q', 'pos_conv',
    'candidate_norm'
])
@pytest.mark.parametrize('mode', MODES)
def test_requires_grad_combinations(mode, frozen):
    """Frozen inputs or parameters: the same gradients, and none where the
    plain path has none."""
    m = _layer(mode, 1, 0.5, (4, 4), 2, 0)
    if mode == 'paper' and frozen == 'candidate_norm':
        pytest.skip('no candidate norm in paper mode')
    for name, p in m.named_parameters():
        if frozen in name.split('.'):
            p.requires_grad_(False)
    grad_x = frozen not in ('inputs', 'x')
    grad_o = frozen not in ('inputs', 'o_self')
    mem = torch.randn_like(m.cache.memory)
    x, o_self, g = (torch.randn(3, 16, 16) for _ in range(3))
    with fused_grc(False):
        plain = _step(m, x, o_self, g, (4, 4), mem, grad_x, grad_o)
    with fused_grc(True):
        fast = _step(m, x, o_self, g, (4, 4), mem, grad_x, grad_o)
    _assert_same(fast, plain, torch.float32)


class _Host(nn.Module):
    """A linear host and GRC, checkpointed or not."""

    def __init__(self, mode, with_cp):
        super().__init__()
        torch.manual_seed(1)
        self.proj = nn.Linear(16, 16)
        self.grc = _layer(mode, 1, 0.5, (4, 4), 2, 0)
        self.with_cp = with_cp

    def _run(self, x):
        return self.grc(x, self.proj(x), (4, 4))

    def forward(self, x):
        if self.with_cp:
            return checkpoint(self._run, x, use_reentrant=False)
        return self._run(x)


@pytest.mark.parametrize('mode', MODES)
def test_activation_checkpointing(mode):
    """Checkpointed fused steps equal plain steps without checkpointing:
    outputs, gradients and caches over two steps."""
    x, g = torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    results = []
    for fused, with_cp in ((False, False), (True, True)):
        model = _Host(mode, with_cp)
        res = []
        with fused_grc(fused):
            for _ in range(2):
                xi = x.clone().requires_grad_()
                out = model(xi)
                out.backward(g)
                res += [out.detach(), xi.grad, model.grc.cache.memory.clone()]
                res += [p.grad.clone() for p in model.parameters()]
                model.zero_grad()
        results.append(res)
    _assert_same(results[1], results[0], torch.float32)


# --------------------------------------------------------------------------
# When the layer takes the fused path
# --------------------------------------------------------------------------
def test_applies_only_where_stated():
    m = GRCAttention(16, 2, cache_len=(4, 4), sr_ratio=2)
    x = torch.randn(2, 16, 16)
    with fused_grc(True):
        assert grc_fused.applies(m, x, x)
        with torch.no_grad():
            assert grc_fused.applies(m, x, x)  # eval forward too
        assert not grc_fused.applies(m, x, x.double())  # mixed dtypes
        assert not grc_fused.applies(m, x.double(), x.double())  # params
        assert grc_fused.applies(m.double(), x.double(), x.double())
        m.float()
        for dtype in (torch.float16, torch.bfloat16):
            h = x.to(dtype)
            assert not grc_fused.applies(m.to(dtype), h, h)
        m.float()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not grc_fused.applies(m, x, x)
        meta = x.to('meta')  # not the CPU (CUDA is untested)
        assert not grc_fused.applies(m, meta, meta)
        seen = []
        torch.jit.trace(
            lambda t: seen.append(grc_fused.applies(m, t, t)) or t * 2, (x, ),
            check_trace=False)
        assert seen == [False]
    with fused_grc(False):
        assert not grc_fused.applies(m, x, x)


def test_parts_fall_back_inside_the_path():
    """A candidate norm other than a plain LayerNorm, or a depthwise
    positional conv, run their plain ops inside the fused path, with the
    same results."""
    m = GRCAttention(
        16,
        2,
        cache_len=(4, 4),
        sr_ratio=2,
        norm_cfg=dict(type='LN', elementwise_affine=False))
    assert not grc_fused.cache_update_fits(m.cache)
    assert grc_fused.cache_update_fits(GRCAttention(16, 2, cache_len=9).cache)
    assert grc_fused.cache_update_fits(
        GRCAttention(16, 2, cache_len=9, mode='paper').cache)
    assert not grc_fused.group_conv_fits(
        GRCAttention(16, 2, cache_len=9, cache_ratio=1.0).pos_conv)
    assert grc_fused.group_conv_fits(
        GRCAttention(16, 2, cache_len=9, cache_ratio=0.25).pos_conv)
    m.train()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    mem = torch.randn_like(m.cache.memory)
    for batch in (2, 1):  # one image: the positional conv stays plain
        x, o_self, g = (torch.randn(batch, 16, 16) for _ in range(3))
        with fused_grc(False):
            plain = _step(m, x, o_self, g, (4, 4), mem)
        with fused_grc(True):
            fast = _step(m, x, o_self, g, (4, 4), mem)
        _assert_same(fast, plain, torch.float32)


def test_double_backward_is_refused_on_the_fused_path():
    """The nodes are once differentiable (stated limit), and say so. (The
    plain path has no second derivative either: SDPA's CPU backward has
    none.)"""
    m = GRCAttention(16, 2, cache_len=(4, 4), sr_ratio=2).train()
    x = torch.randn(2, 16, 16, requires_grad=True)
    with fused_grc(True):
        out = m(x, x * 2, (4, 4))
    g, = torch.autograd.grad((out**2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='once_differentiable'):
        g.sum().backward()


def test_wrong_grid_raises_as_plain():
    m = GRCAttention(16, 2, cache_len=9, pos_conv=True)
    x = torch.randn(2, 12, 16)
    for fused in (False, True):
        with fused_grc(fused):
            with pytest.raises(ValueError, match='does not match'):
                m(x, x, (3, 3))


# --------------------------------------------------------------------------
# The switch
# --------------------------------------------------------------------------
def test_switch_api_and_environment():
    before = use_fused_grc()
    with fused_grc(False):
        assert not use_fused_grc()
        assert set_fused_grc(True) is False
        assert use_fused_grc()
    assert use_fused_grc() == before
    with pytest.raises(ValueError, match=ENV_VAR):
        set_fused_grc('maybe')
    code = ('from mmcached.models.layers.grc.switch import use_fused_grc; '
            'print(use_fused_grc())')
    for value, expected in ((None, 'True'), ('0', 'False'), ('1', 'True'),
                            ('off', 'False')):
        env = dict(os.environ)
        env.pop(ENV_VAR, None)
        if value is not None:
            env[ENV_VAR] = value
        out = subprocess.run([sys.executable, '-c', code],
                             env=env,
                             capture_output=True,
                             text=True,
                             check=True)
        assert out.stdout.strip() == expected


# --------------------------------------------------------------------------
# Each node: float64 gradcheck, and its value against the plain ops
# --------------------------------------------------------------------------
def _f64(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize('released', [True, False])
def test_cache_update_gradcheck(released):
    torch.manual_seed(0)
    d, T, B = 3, 4, 2
    S = _f64(B, T, 2 * d)[..., :d]  # a strided view, as the summary is
    mem = torch.randn(1, T, d, dtype=torch.float64)
    args = [S, mem, _f64(2 * d, 2 * d), _f64(2 * d), _f64(d, 2 * d), _f64(d)]
    args += [_f64(d), _f64(d), 1e-5] if released else [None, None, 0.]
    args.append(released)
    assert torch.autograd.gradcheck(grc_fused.CacheUpdate.apply, args)
    # value: the plain update of a module with these weights
    from mmcached.models.layers import GatedRecurrentCache
    cache = GatedRecurrentCache(
        d, T, mode='released' if released else 'paper').double()
    with torch.no_grad():
        cache.gates.weight.copy_(args[2])
        cache.gates.bias.copy_(args[3])
        cache.candidate.weight.copy_(args[4])
        cache.candidate.bias.copy_(args[5])
        if released:
            cache.candidate_norm.weight.copy_(args[6])
            cache.candidate_norm.bias.copy_(args[7])
    torch.testing.assert_close(
        grc_fused.CacheUpdate.apply(*args), cache.update(S, mem))


@pytest.mark.parametrize('k', [2, 4])
@pytest.mark.parametrize('conv_kw', [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, padding=1, bias=False),
    dict(kernel_size=2, stride=2, padding=0),
])
def test_group_conv_tokens_gradcheck(k, conv_kw):
    torch.manual_seed(0)
    C, hw = 8, (4, 6)
    conv = nn.Conv2d(C, C, groups=C // k, **conv_kw).double()
    tokens = _f64(2, hw[0] * hw[1], C)
    assert grc_fused.group_conv_fits(conv)
    weight = conv.weight.detach().requires_grad_()
    bias = None if conv.bias is None else conv.bias.detach().requires_grad_()

    def fn(t, w, b):
        return grc_fused.GroupConvTokens.apply(t, w, b, hw, conv.stride,
                                               conv.padding, conv.dilation,
                                               conv.groups)

    assert torch.autograd.gradcheck(fn, (tokens, weight, bias))
    ref = F.conv2d(
        tokens.transpose(1, 2).reshape(2, C, *hw),
        weight,
        bias,
        stride=conv.stride,
        padding=conv.padding,
        groups=conv.groups).flatten(2).transpose(1, 2)
    torch.testing.assert_close(fn(tokens, weight, bias), ref)


@pytest.mark.parametrize('pad', [True, False])
@pytest.mark.parametrize('pos', ['none', 'add', 'extra', 'own'])
def test_head_mix_gradcheck(pad, pos):
    torch.manual_seed(0)
    B, N, H, c = 2, 3, 2, 4
    n_extra = 1 if pos == 'extra' else 0
    o_self, alpha = _f64(B, N, H, c), torch.rand(
        H, dtype=torch.float64, requires_grad=True)
    o_mem = _f64(B, N, H, 2 if pad else c)
    p = None if pos == 'none' else _f64(B, N - n_extra, H * c)
    own = pos == 'own'

    def fn(o_self, o_mem, alpha, p):
        if own:  # the mix writes into pos: give it a fresh copy each time
            p = p * 1
        return grc_fused.HeadMix.apply(o_self, o_mem, alpha, p, n_extra, own)

    args = (o_self, o_mem, alpha, p)
    assert torch.autograd.gradcheck(fn, args)
    a = alpha.view(1, 1, H, 1)
    ref = (a * F.pad(o_mem,
                     (0, c - o_mem.shape[-1])) + (1 - a) * o_self).reshape(
                         B, N, H * c)
    if p is not None:
        ref = ref + F.pad(p, (0, 0, n_extra, 0))
    torch.testing.assert_close(fn(*args).reshape(B, N, H * c), ref)


@pytest.mark.parametrize('released', [True, False])
def test_cache_inputs_gradcheck(released):
    torch.manual_seed(0)
    B, N, D, dm = 2, 3, 6, 2
    x, o_self = _f64(B, N, D), _f64(B, N, D)
    w, b = _f64(dm, dm), _f64(dm)

    def fn(x, o_self, w, b):
        # the full outputs go on through fresh tensors, as in the layer
        xf, of, q, s = grc_fused.CacheInputs.apply(x, o_self, w, b, dm,
                                                   released)
        return xf * 2, of * 3, q, s * 1

    assert torch.autograd.gradcheck(fn, (x, o_self, w, b))
    xf, of, q, s = fn(x, o_self, w, b)
    torch.testing.assert_close(q, F.linear(x[..., :dm], w, b))
    torch.testing.assert_close(s, (o_self if released else x)[..., :dm])
