"""Tests of GatedRecurrentCache / GRCAttention: each step of both modes on
hand-checkable tensors, cache semantics, errors, dtypes and DDP sync."""
import copy
import io
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from mmcached.models.layers import (GatedRecurrentCache, GRCAttention,
                                    cache_sync, reset_caches, resize_tokens)
from mmcached.models.layers.cache_sync import sync_caches

MODES = ('released', 'paper')


def _ln(x, eps=1e-5):
    """LayerNorm without affine, written out."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean)**2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _known_memory(T=3, d=2):
    return (torch.arange(T * d, dtype=torch.float32).view(1, T, d) + 1) / 10


# --------------------------------------------------------------------------
# Cache update, step by step
# --------------------------------------------------------------------------
@pytest.mark.parametrize('mode', MODES)
def test_gates_from_bias_and_candidate_from_summary(mode):
    """Zero gate weights: g = sigmoid(bias). Candidate reads the summary
    only (identity on its columns): C~ = s (paper) or LN(GELU(s))."""
    d, T = 2, 3
    cache = GatedRecurrentCache(d, T, mode=mode)
    mem = _known_memory(T, d)
    cache.memory.copy_(mem)
    s = torch.tensor([[[0.5, -1.], [2., 0.], [-0.3, 0.7]],
                      [[1., 1.], [-2., 3.], [0., 0.1]]])
    eye, zero = torch.eye(d), torch.zeros(d, d)
    with torch.no_grad():
        cache.gates.weight.zero_()
        cache.gates.bias.copy_(torch.tensor([0., 0., 1., -1.]))
        # released reads [C; s], paper [s; C]
        cache.candidate.weight.copy_(
            torch.cat([zero, eye] if mode == 'released' else [eye, zero], 1))
        cache.candidate.bias.zero_()
    g_u = torch.sigmoid(torch.tensor([1., -1.]))
    cand = _ln(_gelu(s)) if mode == 'released' else s
    expected = (1 - g_u) * mem + g_u * cand
    cache.eval()
    assert torch.allclose(cache(s), expected, atol=1e-6)


@pytest.mark.parametrize('mode', MODES)
def test_reset_gate_and_concat_order(mode):
    """Reset gate from the summary (identity), update gate 0.5, candidate
    reads the reset cache only: C~ = sigmoid(s) * C (+ GELU, LN released).
    Checks which weight columns act on the cache and which on the summary."""
    d, T = 2, 3
    cache = GatedRecurrentCache(d, T, mode=mode)
    mem = _known_memory(T, d)
    cache.memory.copy_(mem)
    s = torch.randn(2, T, d, generator=torch.Generator().manual_seed(0))
    eye, zero = torch.eye(d), torch.zeros(d, d)
    summary_cols = [zero, eye] if mode == 'released' else [eye, zero]
    cache_cols = [eye, zero] if mode == 'released' else [zero, eye]
    with torch.no_grad():
        w = torch.zeros(2 * d, 2 * d)
        w[:d] = torch.cat(summary_cols, 1)  # reset rows read s
        cache.gates.weight.copy_(w)
        cache.gates.bias.zero_()
        cache.candidate.weight.copy_(torch.cat(cache_cols, 1))
        cache.candidate.bias.zero_()
    cand = torch.sigmoid(s) * mem
    if mode == 'released':
        cand = _ln(_gelu(cand))
    expected = 0.5 * mem + 0.5 * cand
    cache.eval()
    assert torch.allclose(cache(s), expected, atol=1e-6)


def test_update_gate_keeps_or_replaces():
    d, T = 2, 3
    cache = GatedRecurrentCache(d, T, mode='paper')
    mem = _known_memory(T, d)
    cache.memory.copy_(mem)
    s = torch.randn(1, T, d)
    with torch.no_grad():
        cache.gates.weight.zero_()
        cache.candidate.weight.copy_(
            torch.cat([torch.eye(d), torch.zeros(d, d)], 1))
        cache.candidate.bias.zero_()
        cache.gates.bias.copy_(torch.tensor([0., 0., -30., -30.]))
        kept = cache(s)
        cache.gates.bias.copy_(torch.tensor([0., 0., 30., 30.]))
        replaced = cache(s)
    assert torch.allclose(kept, mem.expand_as(kept), atol=1e-6)
    assert torch.allclose(replaced, s, atol=1e-6)


def test_train_writes_batch_mean_eval_does_not():
    cache = GatedRecurrentCache(4, 5, mode='released')
    s = torch.randn(3, 5, 4)
    cache.train()
    new = cache(s)
    assert new.shape == (3, 5, 4)
    assert torch.allclose(cache.memory, new.mean(0, keepdim=True))
    assert not cache.memory.requires_grad
    cache.eval()
    before = cache.memory.clone()
    cache(torch.randn(3, 5, 4))
    assert torch.equal(cache.memory, before)
    cache.reset_cache()
    assert not cache.memory.any()


def test_cache_rejects_wrong_summary_shape():
    cache = GatedRecurrentCache(4, 5)
    with pytest.raises(ValueError, match='summary'):
        cache(torch.randn(2, 6, 4))


# --------------------------------------------------------------------------
# Token resize, mix, cache attention, positional conv
# --------------------------------------------------------------------------
def test_resize_tokens_nearest():
    x = torch.arange(4.).view(1, 4, 1)
    assert resize_tokens(x, 4) is x
    assert resize_tokens(x, 2).flatten().tolist() == [0., 2.]
    assert resize_tokens(x, 8).flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    odd = torch.arange(3.).view(1, 3, 1)
    # nearest: source index floor(i * 3 / 5)
    assert resize_tokens(odd, 5).flatten().tolist() == [0, 0, 1, 1, 2]
    two_ch = torch.stack([torch.arange(3.), -torch.arange(3.)], -1)[None]
    assert resize_tokens(two_ch, 5)[0, :, 1].tolist() == [0, 0, -1, -1, -2]


def _constant_mem_output(m, value):
    """Make o_mem == mem_proj bias == ``value`` for every token."""
    with torch.no_grad():
        m.mem_proj.weight.zero_()
        m.mem_proj.bias.copy_(value)


def test_released_mix_pads_each_head():
    """D=4, 2 heads, D_m=2: head h gets (1-a_h) o_self^h + a_h [o_mem^h, 0]."""
    m = GRCAttention(4, 2, cache_len=3, mode='released', pos_conv=False)
    _constant_mem_output(m, torch.tensor([10., 20.]))
    with torch.no_grad():
        m.lam.copy_(torch.tensor([0., math.log(3.)]))  # a = 1/2, 3/4
    m.eval()
    x, o_self = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    out = m(x, o_self)
    a0, a1 = 0.5, 0.75
    exp = torch.empty_like(o_self)
    exp[..., 0] = (1 - a0) * o_self[..., 0] + a0 * 10
    exp[..., 1] = (1 - a0) * o_self[..., 1]
    exp[..., 2] = (1 - a1) * o_self[..., 2] + a1 * 20
    exp[..., 3] = (1 - a1) * o_self[..., 3]
    assert torch.allclose(out, exp, atol=1e-6)


def test_paper_mix_projects_back():
    m = GRCAttention(4, 2, cache_len=3, mode='paper')
    assert m.pos_conv is None and m.mem_proj.out_features == 4
    assert torch.equal(m.lam, torch.zeros(2))
    p = torch.tensor([1., 2., 3., 4.])
    _constant_mem_output(m, p)
    m.eval()
    x, o_self = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    # lam = 0: both halves weigh 1/2
    assert torch.allclose(m(x, o_self), 0.5 * o_self + 0.5 * p, atol=1e-6)


@pytest.mark.parametrize('mode', MODES)
def test_summary_source(mode):
    """released summarises o_self, paper summarises x."""
    m = GRCAttention(4, 2, cache_len=3, mode=mode, pos_conv=False)
    seen = []
    m.cache.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    x, o_self = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    m.eval()
    m(x, o_self)
    src = o_self if mode == 'released' else x
    assert torch.equal(seen[0], src[..., :2])


def test_cache_attention_uniform_query():
    """q = 0 -> uniform weights: o_mem = mean over cache tokens of V(C_t);
    update gate ~0 keeps C_t = C; V = identity."""
    m = GRCAttention(
        4, 1, cache_len=3, mode='released', pos_conv=False,
        lam_init=30.)  # a = 1: output is o_mem padded
    mem = _known_memory(3, 2)
    m.cache.memory.copy_(mem)
    with torch.no_grad():
        m.cache.gates.bias[2:] = -30.
        m.mem_q.weight.zero_()
        m.mem_q.bias.zero_()
        m.mem_kv.weight.zero_()
        m.mem_kv.weight[2:] = torch.eye(2)  # values = cache
        m.mem_kv.bias.zero_()
        m.mem_proj.weight.copy_(torch.eye(2))
        m.mem_proj.bias.zero_()
    m.eval()
    out = m(torch.randn(2, 5, 4), torch.randn(2, 5, 4))
    exp = F.pad(mem.mean(1), (0, 2)).expand(2, 5, 4)
    assert torch.allclose(out, exp, atol=1e-5)


def test_pos_conv_layout_and_class_token():
    """Identity centre tap + bias, and a shifted tap, on a 2x3 grid; the
    class token gets zero."""
    m = GRCAttention(4, 2, cache_len=7, mode='released', num_extra_tokens=1)
    assert m.pos_conv.groups == 2 and m.pos_conv.weight.shape == (4, 2, 3, 3)
    x = torch.randn(2, 7, 4)
    bias = torch.tensor([1., 2., 3., 4.])
    with torch.no_grad():
        m.pos_conv.weight.zero_()
        for o in range(4):
            m.pos_conv.weight[o, o % 2, 1, 1] = 1.  # own channel, centre
        m.pos_conv.bias.copy_(bias)
    pos = m.positional_term(x, (2, 3))
    assert torch.equal(pos[:, 0], torch.zeros(2, 4))
    assert torch.allclose(pos[:, 1:], x[:, 1:] + bias, atol=1e-6)

    with torch.no_grad():
        m.pos_conv.weight.zero_()
        for o in range(4):
            m.pos_conv.weight[o, o % 2, 0, 1] = 1.  # tap on the row above
        m.pos_conv.bias.zero_()
    pos = m.positional_term(x, (2, 3))
    grid = x[:, 1:].view(2, 2, 3, 4)  # (B, h, w, C)
    exp = torch.zeros_like(grid)
    exp[:, 1] = grid[:, 0]  # first row sees zero padding
    assert torch.allclose(pos[:, 1:], exp.view(2, 6, 4), atol=1e-6)

    # forward adds it on top of the mix; a square grid is assumed when no
    # hw_shape is given
    m.eval()
    with torch.no_grad():
        m.lam.fill_(-30.)
    x = torch.randn(1, 10, 4)
    o_self = torch.randn(1, 10, 4)
    out = m(x, o_self)
    assert torch.allclose(
        out, o_self + m.positional_term(x, (3, 3)), atol=1e-5)
    with pytest.raises(ValueError, match='hw_shape'):
        m(x, o_self, hw_shape=(2, 4))


def _reference(m, x, o_self, hw):
    """The equations written plainly (concatenations, explicit softmax)."""
    B, N, D = x.shape
    H, dm = m.num_heads, m.cache_dims
    c = m.cache
    src = o_self if m.mode == 'released' else x
    s = F.interpolate(
        src[..., :dm].transpose(1, 2), size=c.cache_len,
        mode='nearest').transpose(1, 2)
    mem = c.memory.expand(B, -1, -1)
    both = [mem, s] if m.mode == 'released' else [s, mem]
    g_r, g_u = torch.sigmoid(c.gates(torch.cat(both, -1))).chunk(2, -1)
    both = [g_r * mem, s] if m.mode == 'released' else [s, g_r * mem]
    cand = c.candidate(torch.cat(both, -1))
    if m.mode == 'released':
        cand = c.candidate_norm(F.gelu(cand))
    new = g_u * cand + (1 - g_u) * mem
    kv_in = new
    if m.sr_ratio > 1:
        h, w = m.cache_grid
        kv_in = m.mem_sr(new.transpose(1, 2).reshape(B, dm, h, w))
        kv_in = m.mem_norm(kv_in.flatten(2).transpose(1, 2))
    k, v = m.mem_kv(kv_in).chunk(2, -1)
    q = m.mem_q(x[..., :dm])

    def heads(t):
        return t.reshape(B, t.shape[1], H, dm // H).transpose(1, 2)

    attn = (heads(q) @ heads(k).transpose(-2, -1) * m.scale).softmax(-1)
    o_mem = m.mem_proj((attn @ heads(v)).transpose(1, 2).reshape(B, N, dm))
    o_mem = o_mem.reshape(B, N, H, -1)
    if m.mode == 'released':
        o_mem = torch.cat([o_mem, o_mem.new_zeros(B, N, H, (D - dm) // H)], -1)
    a = torch.sigmoid(m.lam).view(1, 1, H, 1)
    out = (a * o_mem + (1 - a) * o_self.view(B, N, H, -1)).reshape(B, N, D)
    if m.pos_conv is not None:
        n = m.num_extra_tokens
        grid = x[:, n:].transpose(1, 2).reshape(B, D, *hw)
        pos = F.conv2d(
            grid,
            m.pos_conv.weight,
            m.pos_conv.bias,
            padding=1,
            groups=m.pos_conv.groups).flatten(2).transpose(1, 2)
        out = out + F.pad(pos, (0, 0, n, 0))
    return out, new.mean(0, keepdim=True)


def _randomise(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('cfg', [
    dict(cache_len=(4, 4), sr_ratio=2, hw=(4, 4), extra=0),
    dict(cache_len=(4, 4), sr_ratio=2, hw=(5, 7), extra=0),
    dict(cache_len=17, sr_ratio=1, hw=(4, 4), extra=1),
    dict(cache_len=10, sr_ratio=1, hw=(3, 5), extra=1),
])
def test_forward_matches_plain_equations(mode, cfg):
    torch.manual_seed(0)
    m = GRCAttention(
        16,
        2,
        cache_len=cfg['cache_len'],
        mode=mode,
        sr_ratio=cfg['sr_ratio'],
        pos_conv=True,
        num_extra_tokens=cfg['extra'])
    _randomise(m)
    with torch.no_grad():
        m.cache.memory.normal_()
    hw = cfg['hw']
    n = cfg['extra'] + hw[0] * hw[1]
    x, o_self = torch.randn(3, n, 16), torch.randn(3, n, 16)
    m.train()
    exp_out, exp_mem = _reference(m, x, o_self, hw)
    out = m(x, o_self, hw)
    assert out.shape == (3, n, 16)
    assert torch.allclose(out, exp_out, atol=1e-5)
    assert torch.allclose(m.cache.memory, exp_mem, atol=1e-6)


@pytest.mark.parametrize('train', [True, False])
def test_flop_count_sees_plain_ops(train):
    """FLOP counting traces the layer: the custom autograd functions must
    stay out of the trace (they fail it, or count as free)."""
    from mmengine.analysis import FlopAnalyzer

    import mmcached.utils.flops  # noqa: F401  counts SDPA

    class Host(nn.Module):

        def __init__(self):
            super().__init__()
            self.grc = GRCAttention(
                16, 2, cache_len=(4, 4), sr_ratio=2, pos_conv=True)

        def forward(self, x, o_self):
            return self.grc(x, o_self, (4, 4))

    x, o_self = torch.randn(2, 16, 16), torch.randn(2, 16, 16)
    flops = FlopAnalyzer(Host().train(train), (x, o_self)).by_module()
    # 3x3 conv, 2 input channels per output: 2 * 16 * 16 * 9 per sample
    assert flops['grc.pos_conv'] == 2 * 16 * 16 * 2 * 9
    # d = 8 cache channels, 16 cache tokens, batch 2. Per sample: the
    # summary's half of the gates (d -> 2d) and of the candidate (d -> d),
    # and the candidate's reset-cache half (d -> d); once per batch: the
    # cache's half of the gates (d -> 2d).
    assert flops['grc.cache'] >= 2 * 16 * (8 * 16 + 2 * 8 * 8) + 16 * 8 * 16


# --------------------------------------------------------------------------
# Cache semantics
# --------------------------------------------------------------------------
@pytest.mark.parametrize('mode', MODES)
def test_cache_changes_in_train_not_in_eval(mode):
    m = GRCAttention(8, 2, cache_len=9, mode=mode)
    x, o_self = torch.randn(2, 9, 8), torch.randn(2, 9, 8)
    assert not m.cache.memory.any()
    m.train()
    m(x, o_self)
    after_train = m.cache.memory.clone()
    assert after_train.abs().sum() > 0
    m.eval()
    m(torch.randn(2, 9, 8), torch.randn(2, 9, 8))
    assert torch.equal(m.cache.memory, after_train)
    assert reset_caches(nn.Sequential(m, copy.deepcopy(m))) == 2
    assert not m.cache.memory.any()


@pytest.mark.parametrize('mode', MODES)
def test_eval_independent_of_batch_mates(mode):
    torch.manual_seed(0)
    m = GRCAttention(8, 2, cache_len=9, mode=mode)
    _randomise(m)
    m.train()
    m(torch.randn(4, 9, 8), torch.randn(4, 9, 8))  # non-empty cache
    m.eval()
    a, b, c = (torch.randn(1, 9, 8) for _ in range(3))
    oa, ob, oc = (torch.randn(1, 9, 8) for _ in range(3))
    with torch.no_grad():
        alone = m(a, oa)
        with_b = m(torch.cat([a, b]), torch.cat([oa, ob]))
        with_c = m(torch.cat([a, c]), torch.cat([oa, oc]))
    assert torch.allclose(alone, with_b[:1], atol=1e-6)
    assert torch.allclose(with_b[:1], with_c[:1], atol=1e-6)


@pytest.mark.parametrize('mode', MODES)
def test_gradients_reach_every_part(mode):
    torch.manual_seed(0)
    m = GRCAttention(
        16, 2, cache_len=(4, 4), mode=mode, sr_ratio=2, pos_conv=True)
    m.train()
    x = torch.randn(2, 16, 16, requires_grad=True)
    o_self = torch.randn(2, 16, 16, requires_grad=True)
    for _ in range(2):  # the second step runs on a non-empty cache
        m.zero_grad()
        (m(x, o_self, (4, 4)) * torch.randn(2, 16, 16)).sum().backward()
    names = [
        'cache.gates.weight', 'cache.gates.bias', 'cache.candidate.weight',
        'lam', 'mem_q.weight', 'mem_kv.weight', 'mem_proj.weight',
        'mem_sr.weight', 'mem_norm.weight', 'pos_conv.weight'
    ]
    if mode == 'released':
        names.append('cache.candidate_norm.weight')
    params = dict(m.named_parameters())
    for name in names:
        g = params[name].grad
        assert g is not None and g.abs().sum() > 0, name
    # the cache half of the gate weights sees the non-empty cache
    assert m.cache.gates.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0 and o_self.grad.abs().sum() > 0
    assert not m.cache.memory.requires_grad


@pytest.mark.parametrize('cache_len,length', [(12, 12), ((3, 5), 15)])
def test_buffer_exists_at_construction(cache_len, length):
    m = GRCAttention(8, 2, cache_len=cache_len, cache_ratio=0.5)
    sd = m.state_dict()
    assert sd['cache.memory'].shape == (1, length, 4)
    assert m.cache_len == length
    assert 'cache.memory' in dict(m.named_buffers())


def test_state_dict_round_trip_keeps_cache():
    torch.manual_seed(0)
    m = GRCAttention(8, 2, cache_len=(3, 3), sr_ratio=3)
    m.train()
    m(torch.randn(2, 9, 8), torch.randn(2, 9, 8), (3, 3))
    assert m.cache.memory.abs().sum() > 0
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = GRCAttention(8, 2, cache_len=(3, 3), sr_ratio=3)
    m2.load_state_dict(torch.load(buf), strict=True)
    assert torch.equal(m2.cache.memory, m.cache.memory)
    m.eval()
    m2.eval()
    x, o = torch.randn(1, 9, 8), torch.randn(1, 9, 8)
    assert torch.allclose(m(x, o, (3, 3)), m2(x, o, (3, 3)))


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,match', [
    (dict(cache_ratio=0.), 'cache_ratio'),
    (dict(cache_ratio=1.5), 'cache_ratio'),
    (dict(cache_ratio=-0.5), 'cache_ratio'),
    (dict(embed_dims=64, num_heads=3), 'num_heads'),
    (dict(embed_dims=8, num_heads=4, cache_ratio=0.25), 'num_heads'),
    (dict(cache_len=0), 'cache_len'),
    (dict(cache_len=(0, 4)), 'cache_len'),
    (dict(cache_len=(2, 2, 2)), 'cache_len'),
    (dict(cache_len=16, sr_ratio=2), 'grid'),
    (dict(mode='other'), 'mode'),
])
def test_impossible_settings_raise(kwargs, match):
    args = dict(embed_dims=16, num_heads=2, cache_len=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        GRCAttention(**args)


def test_cache_module_arguments():
    with pytest.raises(ValueError, match='cache_len'):
        GatedRecurrentCache(4, 0)
    with pytest.raises(ValueError, match='cache_dims'):
        GatedRecurrentCache(0, 4)
    with pytest.raises(ValueError, match='mode'):
        GatedRecurrentCache(4, 4, mode='x')
    ok = GRCAttention(16, 2, cache_len=4, cache_ratio=1.)
    assert ok.cache_dims == 16 and ok.mem_proj.out_features == 16


# --------------------------------------------------------------------------
# Token counts and dtypes
# --------------------------------------------------------------------------
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize(
    'n_extra,hw,cache_len,sr',
    [
        (0, (7, 5), 16, 1),  # odd N = 35 != T_m
        (0, (1, 3), 16, 1),  # fewer tokens than the cache
        (1, (6, 6), 37, 1),  # class token, N = T_m
        (1, (3, 7), 50, 1),  # class token, N != T_m
        (0, (7, 9), (4, 4), 2),  # sr on the cache grid, other input grid
    ])
def test_any_token_count(mode, n_extra, hw, cache_len, sr):
    m = GRCAttention(
        16,
        4,
        cache_len=cache_len,
        mode=mode,
        sr_ratio=sr,
        num_extra_tokens=n_extra,
        pos_conv=True)
    n = n_extra + hw[0] * hw[1]
    x, o_self = torch.randn(2, n, 16), torch.randn(2, n, 16)
    for train in (True, False):
        m.train(train)
        out = m(x, o_self, hw)
        assert out.shape == (2, n, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_cpu(mode, dtype):
    torch.manual_seed(0)
    host = nn.Linear(16, 16)
    m = GRCAttention(16, 2, cache_len=(4, 4), sr_ratio=2, mode=mode)
    m.train()
    x = torch.randn(2, 16, 16)
    try:
        with torch.autocast('cpu', dtype=dtype):
            out = m(x, host(x), (4, 4))
            loss = out.float().sum()
    except RuntimeError as e:  # fp16 kernels missing on this CPU build
        pytest.skip(f'CPU autocast {dtype}: {e}')
    loss.backward()
    assert torch.isfinite(out.float()).all()
    assert m.cache.memory.dtype == torch.float32
    assert torch.isfinite(m.cache.memory).all()
    assert torch.isfinite(m.cache.gates.weight.grad).all()


# --------------------------------------------------------------------------
# DDP: caches identical across ranks and built from all ranks' samples, the
# updates of a step in one collective
# --------------------------------------------------------------------------
class _TinyCached(nn.Module):
    """A host projection standing in for self-attention, plus GRC."""

    def __init__(self):
        super().__init__()
        self.host = nn.Linear(8, 8)
        self.grc = GRCAttention(8, 2, cache_len=(4, 4), sr_ratio=2)

    def forward(self, x):
        return self.grc(x, self.host(x), (4, 4))


def _gather(t):
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return out


def _ddp_worker(rank, world, init_file, out_file):
    torch.set_num_threads(1)  # a forked child must not reuse the pool
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # same weights on both ranks
        model = _TinyCached()
        local = copy.deepcopy(model)
        local.grc.cache.sync_cache = False  # what this rank alone would store
        ddp = nn.parallel.DistributedDataParallel(model)
        x = torch.randn(
            2, 16, 8, generator=torch.Generator().manual_seed(100 + rank))
        ddp(x).sum().backward()
        local(x)
        # a layer outside a cached backbone: its update is averaged when
        # the caches are next needed
        sync_caches()
        mems = _gather(model.grc.cache.memory)
        locs = _gather(local.grc.cache.memory)
        if rank == 0:
            torch.save(dict(mems=mems, locals=locs), out_file)
    finally:
        dist.destroy_process_group()


def _fork(worker, tmp_path, world=2):
    # fork: spawned children would re-import mmcached (and with it mmdet and
    # mmpretrain), which takes most of a minute on a small machine. A parent
    # whose autograd engine already started its threads (a torch.compile
    # test before this one) cannot run backward in a forked child: spawn.
    out_file = str(tmp_path / 'out.pt')
    for method in ('fork', 'spawn'):
        try:
            mp.start_processes(
                worker,
                args=(world, str(tmp_path / f'init-{method}'), out_file),
                nprocs=world,
                join=True,
                start_method=method)
            break
        except mp.ProcessRaisedException as e:
            if method == 'spawn' or 'Autograd-and-Fork' not in str(e):
                raise
    return torch.load(out_file)


@pytest.mark.skipif(not dist.is_available(), reason='no torch.distributed')
def test_ddp_cache_sync(tmp_path):
    res = _fork(_ddp_worker, tmp_path)
    mems, locs = res['mems'], res['locals']
    assert not torch.allclose(locs[0], locs[1])  # ranks saw different data
    assert torch.equal(mems[0], mems[1])
    assert torch.allclose(mems[0], (locs[0] + locs[1]) / 2, atol=1e-6)
    assert mems[0].abs().sum() > 0


def _backbone_worker(rank, world, init_file, out_file):
    """A cached ViT of 3 layers under DDP, two training steps, its caches
    averaged in one collective per step, and the same with one blocking
    all_reduce per layer (the old way)."""
    from mmcached.models.backbones import CachedViT
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    calls = []  # the collectives the caches start (DDP's own are in C++)
    all_reduce = dist.all_reduce
    dist.all_reduce = lambda t, *a, **k: calls.append(t.numel()) or \
        all_reduce(t, *a, **k)
    try:
        torch.manual_seed(0)
        bucketed = CachedViT(
            arch=dict(
                embed_dims=32,
                num_layers=3,
                num_heads=2,
                feedforward_channels=64),
            img_size=32,
            patch_size=8)
        per_layer, local = copy.deepcopy(bucketed), copy.deepcopy(bucketed)
        for m in local.modules():
            if isinstance(m, GatedRecurrentCache):
                m.sync_cache = False  # what this rank alone would store
        models = dict(
            bucketed=nn.parallel.DistributedDataParallel(bucketed),
            per_layer=nn.parallel.DistributedDataParallel(per_layer),
            local=local)
        sync = cache_sync.cache_sync()
        res = {name: dict(calls=[]) for name in models}
        g = torch.Generator().manual_seed(100 + rank)
        for step in range(2):
            x = torch.randn(2, 3, 32, 32, generator=g)
            for name, model in models.items():
                sync.bucketed = name != 'per_layer'
                calls.clear()
                model(x)[0].sum().backward()
                res[name]['calls'].append(list(calls))
                # written when the backward ended: nothing left to sync
                res[name]['busy'] = sync.busy()
        sync.bucketed = True
        dist.all_reduce = all_reduce
        for name, model in models.items():
            res[name]['caches'] = [
                _gather(v) for k, v in model.state_dict().items()
                if k.endswith('cache.memory')
            ]
        if rank == 0:
            torch.save(res, out_file)
    finally:
        dist.all_reduce = all_reduce
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason='no torch.distributed')
def test_ddp_cache_sync_one_collective_per_step(tmp_path):
    res = _fork(_backbone_worker, tmp_path)
    numel = 3 * 17 * 16  # 3 caches of (1, 17, 16)
    assert res['bucketed']['calls'] == [[numel], [numel]]
    assert res['per_layer']['calls'] == [[numel // 3] * 3] * 2
    assert res['local']['calls'] == [[], []]
    assert not res['bucketed']['busy']
    for caches, old, locs in zip(res['bucketed']['caches'],
                                 res['per_layer']['caches'],
                                 res['local']['caches']):
        assert not torch.allclose(locs[0], locs[1])  # ranks saw other data
        assert torch.equal(caches[0], caches[1])  # identical on every rank
        assert torch.equal(caches[0], old[0])  # what the old way gave
        assert caches[0].abs().sum() > 0
