"""Tests of MemoryCachingAttention: each variant's equations on tiny
hand-checkable tensors, the identities between variants, the chunked
computation against the per-token reference loop (float64), streaming,
gradients, errors, autocast, the host contract and FLOP counting."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcached.models.layers.memory_caching import (
    MCOptions, MemoryCachingAttention, chunk_memory_caching,
    memory_caching_reference, memory_caching_reference_layer)
from mmcached.models.layers.memory_caching import weighted_read as mc_autograd
from mmcached.models.layers.memory_caching.fla import fla_available
from mmcached.models.layers.memory_caching.grid import grid_memory_caching
from mmcached.models.layers.memory_caching.per_token import (deep_gradient,
                                                             deep_read,
                                                             gate_weights,
                                                             segment_lengths)

AGGREGATIONS = ('residual', 'grm', 'soup', 'ssc')
STARTS = ('checkpoint', 'restart')
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
needs_fla = pytest.mark.skipif(
    not fla_available(), reason='needs CUDA and fla-core')


def _opts(**kw):
    opts = dict(
        memory='linear',
        segmentation='constant',
        segment_size=2,
        segment_start='checkpoint',
        aggregation='grm',
        top_k=None,
        chunk_size=1,
        inner_lr=1.0,
        block_size=64,
        linear_form='state',
        kernel='auto')
    opts.update(kw)
    return MCOptions(**opts)


def _layer(D=8, H=2, std=0.3, **kw):
    """A float64 layer with random weights of a moderate scale (the deep
    memory's inner steps grow fast with large weights)."""
    if kw.get('aggregation') == 'ssc':
        kw.setdefault('top_k', 2)
    torch.manual_seed(0)
    layer = MemoryCachingAttention(D, H, **kw).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, std)
    return layer


def _close(a, b, tol=1e-10):
    scale = b.abs().max().clamp_min(1.)
    assert (a - b).abs().max() / scale < tol, (a - b).abs().max()


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------
def test_segment_lengths():
    assert segment_lengths(37, 'logarithmic') == [32, 4, 1]
    assert segment_lengths(64, 'logarithmic') == [64]
    assert segment_lengths(1, 'logarithmic') == [1]
    assert segment_lengths(10, 'constant', 4) == [4, 4, 2]
    assert segment_lengths(8, 'constant', 4) == [4, 4]
    assert segment_lengths(3, 'constant', 4) == [3]
    assert segment_lengths(37, 'uniform', num_segments=4) == [10, 9, 9, 9]
    assert segment_lengths(12, 'uniform', num_segments=4) == [3] * 4
    assert segment_lengths(3, 'uniform', num_segments=8) == [1, 1, 1]


# --------------------------------------------------------------------------
# Equations on tiny tensors, written out by hand (B = H = 1, d = 2)
# --------------------------------------------------------------------------
def _tiny():
    """4 tokens, segments of 2: token t has q_t, k_t, v_t, u_t."""
    q = torch.tensor([[1., 0.], [0., 1.], [1., 1.], [2., -1.]])
    k = torch.tensor([[1., 2.], [0., 1.], [-1., 1.], [1., 0.]])
    v = torch.tensor([[1., -1.], [2., 0.], [0., 3.], [1., 1.]])
    u = torch.tensor([[0., 0.], [1., 0.], [0.5, -1.], [-1., 2.]])
    return [t.double()[None, None] for t in (q, k, v, u)]


def _mem(k, v, idx):
    """sum_j v_j k_j^T over token indices idx."""
    return sum(torch.outer(v[j], k[j]) for j in idx)


def _both(q, k, v, u, **kw):
    """The chunked computation and the reference loop on the same input."""
    w = dict(w_in=kw.pop('w_in', None), w_out=kw.pop('w_out', None))
    opts = _opts(**kw)
    fast = chunk_memory_caching(q, k, v, u, opts, **w)[0]
    ref = memory_caching_reference(q, k, v, u, opts, **w)
    _close(fast, ref)
    return fast[0, 0]


@pytest.mark.parametrize('start', STARTS)
def test_linear_residual_by_hand(start):
    q, k, v, u = _tiny()
    y = _both(q, k, v, u, aggregation='residual', segment_start=start)
    Q, K, V = q[0, 0], k[0, 0], v[0, 0]
    M0 = _mem(K, V, [0, 1])  # the cache of segment 0
    for t in range(4):
        if t < 2:  # no cache yet: y = M_t q_t
            expected = _mem(K, V, range(t + 1)) @ Q[t]
        else:
            own = _mem(K, V, range(2, t + 1))
            online = own + M0 if start == 'checkpoint' else own
            expected = (online + M0) @ Q[t]
        assert torch.allclose(y[t], expected), (t, y[t], expected)


@pytest.mark.parametrize('start', STARTS)
def test_linear_grm_by_hand(start):
    q, k, v, u = _tiny()
    y = _both(q, k, v, u, aggregation='grm', segment_start=start)
    Q, K, V, U = q[0, 0], k[0, 0], v[0, 0], u[0, 0]
    M0, c0 = _mem(K, V, [0, 1]), K[0] + K[1]
    # segment 0: only the online memory, gate 1
    assert torch.allclose(y[1], _mem(K, V, [0, 1]) @ Q[1])
    t = 3
    c_on = K[2] + K[3]
    s = torch.stack([U[t] @ c0, U[t] @ c_on])
    g = torch.exp(s) / torch.exp(s).sum()
    own = _mem(K, V, [2, 3])
    online = own + M0 if start == 'checkpoint' else own
    expected = g[0] * (M0 @ Q[t]) + g[1] * (online @ Q[t])
    assert torch.allclose(y[t], expected)
    # token 2: the online key sum runs up to t only
    s = torch.stack([U[2] @ c0, U[2] @ K[2]])
    g = torch.softmax(s, 0)
    online = _mem(K, V, [2]) + (M0 if start == 'checkpoint' else 0)
    assert torch.allclose(y[2], g[0] * (M0 @ Q[2]) + g[1] * (online @ Q[2]))


def test_ssc_keeps_top_k_by_score():
    """6 tokens in 3 segments of 2 (restart): token 5 reads caches 0 and 1
    and the online one; top_k = 1 keeps the cache of the larger <u, c>."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 1, 6, 2, dtype=torch.float64) for _ in range(3))
    u = torch.zeros(1, 1, 6, 2, dtype=torch.float64)
    K, V, Q = k[0, 0], v[0, 0], q[0, 0]
    c = [K[0] + K[1], K[2] + K[3]]
    u[0, 0, 5] = (c[1] - c[0]) / (c[1] - c[0]).norm()  # prefers cache 1
    y = _both(q, k, v, u, aggregation='ssc', top_k=1, segment_start='restart')
    c_on = K[4] + K[5]
    U = u[0, 0, 5]
    assert U @ c[1] > U @ c[0]
    g = torch.softmax(torch.stack([U @ c[1], U @ c_on]), 0)
    expected = g[0] * (_mem(K, V, [2, 3]) @ Q[5]) + \
        g[1] * (_mem(K, V, [4, 5]) @ Q[5])
    assert torch.allclose(y[5], expected)


def test_gate_weights_by_hand():
    u = torch.tensor([1., 2.])
    cached = [
        torch.tensor([1., 0.]),
        torch.tensor([0., 1.]),
        torch.tensor([3., 0.])
    ]
    online = torch.tensor([-1., 0.])
    scores = torch.tensor([1., 2., 3., -1.])
    g, g_on = gate_weights(u, cached, online, 'grm')
    expected = torch.softmax(scores, 0)
    assert torch.allclose(torch.stack(g + [g_on]), expected)
    # ssc, k = 2: caches 1 and 2 (scores 2, 3) and the online one
    g, g_on = gate_weights(u, cached, online, 'ssc', top_k=2)
    kept = torch.softmax(torch.tensor([2., 3., -1.]), 0)
    assert torch.allclose(
        torch.stack(g + [g_on]), torch.cat([torch.zeros(1), kept]))
    g, g_on = gate_weights(u, cached, online, 'residual')
    assert all(float(x) == 1 for x in g + [g_on])


def test_deep_gradient_is_autograd_of_inner_objective():
    torch.manual_seed(0)
    w_in = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(3, 8, 2, dtype=torch.float64, requires_grad=True)
    k, v = torch.randn(3, 2, dtype=torch.float64), \
        torch.randn(3, 2, dtype=torch.float64)
    objective = (deep_read((w_in, w_out), k) * v).sum()
    auto = torch.autograd.grad(objective, (w_in, w_out))
    mine = deep_gradient((w_in, w_out), k, v)
    for a, b in zip(auto, mine):
        assert torch.allclose(a, b)
    # M(x) = x + gelu(x W_in) W_out
    x = k[0]
    assert torch.allclose(
        deep_read((w_in[0], w_out[0]), x), x + F.gelu(x @ w_in[0]) @ w_out[0])


def _deep_tiny(T=4, d=2, Fh=3, seed=0):
    torch.manual_seed(seed)
    q, k, v, u = (0.5 * torch.randn(1, 1, T, d, dtype=torch.float64)
                  for _ in range(4))
    w_in = 0.5 * torch.randn(1, d, Fh, dtype=torch.float64)
    w_out = 0.5 * torch.randn(1, Fh, d, dtype=torch.float64)
    return q, k, v, u, w_in, w_out


def _dla_steps(w_in, w_out, ks, vs, lr, anchor=None):
    """Successive DLA steps on <M(k), v>, written with autograd; the
    gradients at ``anchor`` when given (the chunk form)."""
    theta = [w_in.clone(), w_out.clone()]
    for k, v in zip(ks, vs):
        at = [p.detach().requires_grad_() for p in (anchor or theta)]
        obj = (deep_read(at, k) * v).sum()
        grads = torch.autograd.grad(obj, at)
        theta = [p + lr * g for p, g in zip(theta, grads)]
    return theta


def test_deep_grm_by_hand():
    """Segments of 2, exact per-token DLA (chunk 1), checkpoint: token 3
    reads the cache of segment 0 and its online memory."""
    q, k, v, u, w_in, w_out = _deep_tiny()
    lr = 0.7
    y = _both(
        q,
        k,
        v,
        u,
        memory='deep',
        aggregation='grm',
        w_in=w_in,
        w_out=w_out,
        inner_lr=lr)
    K, V, Q, U = k[0, 0], v[0, 0], q[0, 0], u[0, 0]
    cache = _dla_steps(w_in[0], w_out[0], K[:2], V[:2], lr)
    online = _dla_steps(*cache, K[2:], V[2:], lr)
    g = torch.softmax(
        torch.stack([U[3] @ (K[0] + K[1]), U[3] @ (K[2] + K[3])]), 0)
    expected = g[0] * deep_read(cache, Q[3]) + g[1] * deep_read(online, Q[3])
    assert torch.allclose(y[3], expected)


def test_deep_soup_by_hand():
    """Soup reads one memory with the gate-mixed weights (restart)."""
    q, k, v, u, w_in, w_out = _deep_tiny(seed=1)
    y = _both(
        q,
        k,
        v,
        u,
        memory='deep',
        aggregation='soup',
        segment_start='restart',
        w_in=w_in,
        w_out=w_out)
    K, V, Q, U = k[0, 0], v[0, 0], q[0, 0], u[0, 0]
    cache = _dla_steps(w_in[0], w_out[0], K[:2], V[:2], 1.)
    online = _dla_steps(w_in[0], w_out[0], K[2:], V[2:], 1.)
    g = torch.softmax(
        torch.stack([U[3] @ (K[0] + K[1]), U[3] @ (K[2] + K[3])]), 0)
    mixed = [g[0] * a + g[1] * b for a, b in zip(cache, online)]
    assert torch.allclose(y[3], deep_read(mixed, Q[3]))
    # not the GRM read for a deep memory
    grm = g[0] * deep_read(cache, Q[3]) + g[1] * deep_read(online, Q[3])
    assert not torch.allclose(y[3], grm)


def test_deep_chunk_form_by_hand():
    """Chunks of 2 in one segment of 4: tokens 2 and 3 take their gradients
    at the weights after tokens 0, 1; each reads its own update too."""
    q, k, v, u, w_in, w_out = _deep_tiny(seed=2)
    y = _both(
        q,
        k,
        v,
        u,
        memory='deep',
        aggregation='grm',
        segment_size=4,
        chunk_size=2,
        w_in=w_in,
        w_out=w_out)
    K, V, Q = k[0, 0], v[0, 0], q[0, 0]
    w0 = [w_in[0], w_out[0]]
    after1 = _dla_steps(*w0, K[:2], V[:2], 1., anchor=w0)
    after2 = _dla_steps(*after1, K[2:3], V[2:3], 1., anchor=after1)
    after3 = _dla_steps(*after1, K[2:4], V[2:4], 1., anchor=after1)
    assert torch.allclose(y[2], deep_read(after2, Q[2]))
    assert torch.allclose(y[3], deep_read(after3, Q[3]))
    # and differs from the exact per-token update
    exact = _dla_steps(*w0, K, V, 1.)
    assert not torch.allclose(y[3], deep_read(exact, Q[3]))


# --------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------
def _rand(B=2, H=2, L=11, d=3, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(B, H, L, d, dtype=torch.float64) for _ in range(4)]


def _causal_linear(q, k, v, weight=None):
    """y_t = sum_{j <= t} w_tj (q_t . k_j) v_j."""
    A = (q @ k.transpose(-1, -2)).tril()
    return (A if weight is None else A * weight) @ v


@pytest.mark.parametrize('start', STARTS)
def test_linear_residual_is_one_presummed_memory(start):
    """Residual over a linear memory is one matrix: restart, the plain
    memory; checkpoint, token j's write counted 1 + s - seg(j) times."""
    q, k, v, u = _rand()
    C, L = 3, 11
    y = chunk_memory_caching(
        q, k, v, None,
        _opts(aggregation='residual', segment_size=C, segment_start=start))[0]
    seg = torch.arange(L) // C
    if start == 'restart':
        w = None
    else:
        w = (1 + seg[:, None] - seg[None, :]).double()
    _close(y, _causal_linear(q, k, v, w))


@pytest.mark.parametrize('start', STARTS)
@pytest.mark.parametrize('form', ('state', 'token'))
def test_linear_soup_equals_grm(start, form):
    q, k, v, u = _rand()
    kw = dict(segment_size=3, segment_start=start, linear_form=form)
    soup = chunk_memory_caching(q, k, v, u, _opts(aggregation='soup', **kw))[0]
    grm = chunk_memory_caching(q, k, v, u, _opts(aggregation='grm', **kw))[0]
    _close(soup, grm, 1e-12)


@pytest.mark.parametrize('memory', ('linear', 'deep'))
def test_ssc_with_all_segments_equals_grm(memory):
    q, k, v, u = _rand(d=2)
    w = dict(
        w_in=0.3 * torch.randn(2, 2, 8, dtype=torch.float64),
        w_out=0.3 * torch.randn(2, 8, 2, dtype=torch.float64))
    kw = dict(memory=memory, segment_size=3, chunk_size=2)  # 3 caches max
    grm = chunk_memory_caching(q, k, v, u, _opts(aggregation='grm', **kw),
                               **w)[0]
    ssc = chunk_memory_caching(q, k, v, u,
                               _opts(aggregation='ssc', top_k=3, **kw), **w)[0]
    _close(ssc, grm, 1e-12)
    fewer = chunk_memory_caching(q, k, v, u,
                                 _opts(aggregation='ssc', top_k=1, **kw),
                                 **w)[0]
    assert not torch.allclose(fewer, grm)


@pytest.mark.parametrize('aggregation', AGGREGATIONS)
def test_one_segment_is_the_plain_memory(aggregation):
    """With one segment every variant is the plain memory: linear, causal
    linear attention; deep, the per-token DLA memory."""
    q, k, v, u = _rand(L=7, d=2)
    kw = dict(
        aggregation=aggregation,
        segment_size=7,
        top_k=1 if aggregation == 'ssc' else None)
    y = chunk_memory_caching(q, k, v, u, _opts(**kw))[0]
    _close(y, _causal_linear(q, k, v))
    uniform = dict(
        kw, segmentation='uniform', segment_size=None, num_segments=1)
    _close(chunk_memory_caching(q, k, v, u, _opts(**uniform))[0], y)
    torch.manual_seed(3)
    w_in = 0.3 * torch.randn(2, 2, 8, dtype=torch.float64)
    w_out = 0.3 * torch.randn(2, 8, 2, dtype=torch.float64)
    y = chunk_memory_caching(
        q, k, v, u, _opts(memory='deep', **kw), w_in=w_in, w_out=w_out)[0]
    b, h, t = 1, 1, 5
    theta = _dla_steps(w_in[h], w_out[h], k[b, h, :t + 1], v[b, h, :t + 1], 1.)
    assert torch.allclose(y[b, h, t], deep_read(theta, q[b, h, t]))


def test_logarithmic_segments_of_37_tokens():
    """37 tokens: segments 32, 4, 1, seen in the outputs: token 35 (second
    segment) reads the cache of tokens 0..31 only."""
    q, k, v, u = _rand(B=1, H=1, L=37, d=2)
    opts = _opts(
        aggregation='residual',
        segmentation='logarithmic',
        segment_size=None,
        segment_start='restart')
    y = chunk_memory_caching(q, k, v, None, opts)[0][0, 0]
    Q, K, V = q[0, 0], k[0, 0], v[0, 0]
    for t, own in ((35, range(32, 36)), (36, [36])):
        caches = [range(0, 32)] + ([range(32, 36)] if t == 36 else [])
        M = _mem(K, V, own) + sum(_mem(K, V, c) for c in caches)
        assert torch.allclose(y[t], M @ Q[t])
    layer = _layer(memory='linear', segmentation='logarithmic')
    x = torch.randn(1, 37, 8, dtype=torch.float64)
    _close(layer(x), memory_caching_reference_layer(layer, x))


# --------------------------------------------------------------------------
# The chunked computation against the per-token loop (float64)
# --------------------------------------------------------------------------
CASES = list(
    itertools.product(('linear', 'deep'), AGGREGATIONS, STARTS, (True, False)))


@pytest.mark.parametrize('memory,aggregation,start,causal', CASES)
def test_fast_equals_loop(memory, aggregation, start, causal):
    """Outputs and gradients (input and every parameter) of the layer equal
    the reference loop's, for L = 11 with segments of 4 (the last one 3
    long): linear in both forms, deep with exact per-token updates (chunk
    1) and with chunks of 3 (against the loop of that same math)."""
    _check_fast_equals_loop(memory, aggregation, start, causal, 'cpu')


def _check_fast_equals_loop(memory, aggregation, start, causal, device):
    variants = [dict(linear_form='state', block_size=3),
                dict(linear_form='token')] if memory == 'linear' else \
        [dict(chunk_size=1), dict(chunk_size=3, inner_lr=0.5)]
    for extra in variants:
        layer = _layer(
            memory=memory,
            aggregation=aggregation,
            segment_start=start,
            causal=causal,
            segment_size=4,
            **extra).to(device)
        x = torch.randn(
            2, 11, 8, dtype=torch.float64, device=device, requires_grad=True)
        w = torch.randn(2, 11, 8, dtype=torch.float64, device=device)
        params = [x] + list(layer.parameters())
        y = layer(x)
        grads = torch.autograd.grad((y * w).sum(), params)
        ref = memory_caching_reference_layer(layer, x)
        ref_grads = torch.autograd.grad((ref * w).sum(), params)
        _close(y, ref)
        for a, b in zip(grads, ref_grads):
            _close(a, b)


@pytest.mark.parametrize('memory', ('linear', 'deep'))
@pytest.mark.parametrize('causal', (True, False))
def test_uniform_segments_equal_loop(memory, causal):
    """Uniform segmentation (11 tokens in 3: 4, 4, 3): outputs and
    gradients equal the reference loop's."""
    extra = dict(linear_form='state', block_size=3) if memory == 'linear' \
        else dict(chunk_size=1)
    layer = _layer(
        memory=memory,
        causal=causal,
        segmentation='uniform',
        num_segments=3,
        **extra)
    x = torch.randn(2, 11, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 11, 8, dtype=torch.float64)
    params = [x] + list(layer.parameters())
    y = layer(x)
    ref = memory_caching_reference_layer(layer, x)
    _close(y, ref)
    for a, b in zip(
            torch.autograd.grad((y * w).sum(), params),
            torch.autograd.grad((ref * w).sum(), params)):
        _close(a, b)


def test_long_rows_and_many_segments_equal_loop():
    """Several row blocks of the cached read (L > 256) and ragged blocks."""
    layer = _layer(
        D=4,
        H=1,
        segment_size=37,
        block_size=16,
        aggregation='ssc',
        top_k=3,
        std=0.2)
    x = torch.randn(1, 300, 4, dtype=torch.float64)
    _close(layer(x), memory_caching_reference_layer(layer, x))


def test_weighted_read_node_gradcheck():
    torch.manual_seed(0)
    L, N, a, b = 9, 3, 2, 3
    seg = torch.arange(L) // 3
    x = torch.randn(1, 2, L, a, dtype=torch.float64, requires_grad=True)
    valid = torch.arange(N)[None] < seg[:, None]
    g = (torch.rand(1, 2, L, N, dtype=torch.float64) * valid).requires_grad_()
    W = torch.randn(1, 2, N, a, b, dtype=torch.float64, requires_grad=True)
    blocks = mc_autograd.row_blocks([3, 3, 3], 0, N, min_rows=2)
    assert blocks == [(3, 6, 1), (6, 9, 2)]
    # rows of a continued stream: global segments 2, 3, 4; two per block
    assert mc_autograd.row_blocks([2, 2, 1], 2, 3, min_rows=3) == \
        [(0, 4, 3), (4, 5, 3)]
    assert torch.autograd.gradcheck(
        lambda *t: mc_autograd.weighted_read(*t, blocks), (x, g, W))
    dense = ((g[..., None] * x[..., None, :]).flatten(-2) @ W.flatten(2, 3))
    _close(mc_autograd.weighted_read(x, g, W, blocks), dense)
    _close(mc_autograd.weighted_read_plain(x, g, W, blocks), dense)


# --------------------------------------------------------------------------
# The grid form: the segment layout in the graph (symbolic lengths)
# --------------------------------------------------------------------------
SEGMENTS = (dict(segmentation='uniform', num_segments=3, segment_size=None),
            dict(segmentation='constant', segment_size=4))


@pytest.mark.parametrize('aggregation,start',
                         list(itertools.product(AGGREGATIONS, STARTS)))
@pytest.mark.parametrize('segments', SEGMENTS)
def test_grid_form_equals_loop(segments, aggregation, start):
    """The grid form's outputs and gradients equal the reference loop's,
    for lengths with ragged segments and blocks (block 3) and with segments
    shorter than one block (block 64)."""
    torch.manual_seed(0)
    for L, block in ((3, 3), (11, 3), (37, 3), (11, 64)):
        opts = _opts(
            aggregation=aggregation,
            segment_start=start,
            block_size=block,
            top_k=2 if aggregation == 'ssc' else None,
            **segments)
        q, k, v, u = (
            torch.randn(2, 2, L, 3, dtype=torch.float64, requires_grad=True)
            for _ in range(4))
        if aggregation == 'residual':
            u = None
        inputs = [t for t in (q, k, v, u) if t is not None]
        y = grid_memory_caching(q, k, v, u, opts)
        ref = memory_caching_reference(q, k, v, u, opts)
        _close(y, ref)
        w = torch.randn_like(y)
        for a, b in zip(
                torch.autograd.grad((y * w).sum(), inputs),
                torch.autograd.grad((ref * w).sum(), inputs)):
            _close(a, b)


@pytest.mark.parametrize('segments', SEGMENTS)
def test_export_serves_any_length(segments):
    """torch.export with a dynamic length takes the grid form: the program
    exported at 5 tokens (segments shorter than a block) and the one
    exported at 40 both run at 4 to 200 tokens (one to many blocks per
    segment) and equal the eager layer, which runs the chunked engine."""
    A = torch.export.Dim.AUTO
    torch.manual_seed(0)
    layer = MemoryCachingAttention(
        8, 2, causal=False, block_size=4, **segments).eval()
    for length in (5, 40):
        program = torch.export.export(
            layer, (torch.randn(2, length, 8), ),
            dynamic_shapes={'x': {
                0: A,
                1: A
            }})
        # batch and length: no upper bound recorded
        ranges = list(program.range_constraints.values())
        assert len(ranges) == 2 and all(r.upper > 10**9 for r in ranges)
        for n in (4, 13, 29, 200):
            x = torch.randn(3, n, 8)
            with torch.no_grad():
                ref = layer(x)
            assert torch.allclose(
                program.module()(x), ref, atol=1e-5, rtol=1e-4), (length, n)


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------
@pytest.mark.parametrize('memory,aggregation,start',
                         list(
                             itertools.product(('linear', 'deep'),
                                               AGGREGATIONS, STARTS)))
def test_stream_equals_one_pass(memory, aggregation, start):
    extra = dict(chunk_size=2) if memory == 'deep' else dict(block_size=2)
    forms = ('state', 'token') if memory == 'linear' else (None, )
    for form in forms:
        kw = dict(linear_form=form) if form else {}
        layer = _layer(
            memory=memory,
            aggregation=aggregation,
            segment_start=start,
            segment_size=5,
            **extra,
            **kw)
        x = torch.randn(2, 23, 8, dtype=torch.float64)
        y = layer(x)
        # pieces ending inside segments and inside chunks, single tokens,
        # pieces spanning several segments
        for cuts in ([3, 4, 1, 7, 8], [1] * 6 + [17], [2, 9, 12]):
            state, outs, i = None, [], 0
            for n in cuts:
                out, state = layer.stream(x[:, i:i + n], state)
                outs.append(out)
                i += n
            _close(torch.cat(outs, 1), y)
        assert state.cached_keys.shape[2] == 4 and state.offset == 3


# --------------------------------------------------------------------------
# Gradients, dtypes
# --------------------------------------------------------------------------
@pytest.mark.parametrize('memory,aggregation',
                         list(
                             itertools.product(('linear', 'deep'),
                                               AGGREGATIONS)))
def test_gradients_reach_u_and_every_projection(memory, aggregation):
    kw = dict(top_k=1) if aggregation == 'ssc' else {}
    layer = MemoryCachingAttention(
        16,
        2,
        memory=memory,
        segment_size=4,
        aggregation=aggregation,
        causal=False,
        **kw)
    layer.init_weights()
    layer(torch.randn(2, 13, 16)).pow(2).sum().backward()
    D = 16
    w = layer.qkv.weight.grad
    for part in range(3):  # q, k, v rows
        assert w[part * D:(part + 1) * D].abs().sum() > 0, part
    names = ['proj.weight', 'proj.bias']
    if aggregation != 'residual':
        names += ['u_proj.weight']
    else:
        assert layer.u_proj is None
    if memory == 'deep':
        names += ['memory_w_in', 'memory_w_out']
    params = dict(layer.named_parameters())
    for n in names:
        assert params[n].grad is not None and \
            params[n].grad.abs().sum() > 0, n
    for n, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize('device', ('cpu', pytest.param('cuda', marks=cuda)))
@pytest.mark.parametrize('dtype', (torch.bfloat16, torch.float16))
@pytest.mark.parametrize('memory', ('linear', 'deep'))
def test_autocast_no_nan(device, dtype, memory):
    """Autocast in bf16 and fp16 (torch supports both on CPU too): the
    projections run in half precision, the mixing in float32 (on CUDA
    through fla's kernels where installed): finite, close to float32,
    finite gradients."""
    torch.manual_seed(0)
    layer = MemoryCachingAttention(
        64, 4, memory=memory, segment_size=32, causal=False).to(device)
    layer.init_weights()
    x = torch.randn(2, 75, 64, device=device)
    ref = layer(x)
    with torch.autocast(device, dtype=dtype):
        y = layer(x)
    y.float().sum().backward()
    assert y.dtype == dtype
    assert torch.isfinite(y.float()).all()
    assert (y.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# --------------------------------------------------------------------------
# Contract with a host attention; errors
# --------------------------------------------------------------------------
class _FakeHost(nn.Module):
    """A host attention: its own fused q/k/v and output projections."""

    def __init__(self, D):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.out = nn.Linear(D, D)

    def project_qkv(self, x):
        return self.qkv(x).chunk(3, dim=-1)

    def project_out(self, y):
        return self.out(y)


@pytest.mark.parametrize('memory', ('linear', 'deep'))
def test_host_projections(memory):
    D = 16
    host = _FakeHost(D)
    mc = MemoryCachingAttention(
        D,
        4,
        memory=memory,
        segment_size=4,
        host_projections=True,
        causal=False)
    assert MemoryCachingAttention.replaces_host is True
    assert MemoryCachingAttention.name == 'mc'
    owned = {n.split('.')[0] for n, _ in mc.named_parameters()}
    expected = {'u_proj'} | ({'memory_w_in', 'memory_w_out'}
                             if memory == 'deep' else set())
    assert owned == expected
    alone = MemoryCachingAttention(
        D, 4, memory=memory, segment_size=4, causal=False)
    alone.load_state_dict({
        **mc.state_dict(), 'qkv.weight': host.qkv.weight,
        'qkv.bias': host.qkv.bias,
        'proj.weight': host.out.weight,
        'proj.bias': host.out.bias
    })
    x = torch.randn(2, 11, D)
    y = mc(x, hw_shape=None, host=host)
    assert torch.allclose(y, alone(x), atol=1e-6)
    y.sum().backward()
    assert host.qkv.weight.grad.abs().sum() > 0
    assert mc.u_proj.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match='host'):
        mc(x)
    mc.reset_cache()  # no state across calls: a no-op
    assert torch.equal(mc(x, host=host), y)


@pytest.mark.parametrize('kwargs,match', [
    (dict(segment_size=0), 'segment_size must be an int >= 1'),
    (dict(segment_size=2.5), 'segment_size must be an int >= 1'),
    (dict(aggregation='ssc', top_k=0), 'top_k must be an int >= 1'),
    (dict(aggregation='ssc'), 'needs top_k'),
    (dict(aggregation='grm', top_k=2), "top_k applies only to"),
    (dict(memory='lstm'), r"memory must be one of \('linear', 'deep'\)"),
    (dict(aggregation='mean'), 'aggregation must be one of'),
    (dict(segmentation='fixed'), 'segmentation must be one of'),
    (dict(segment_start='none'), 'segment_start must be one of'),
    (dict(segmentation='logarithmic',
          segment_size=4), 'segment_size applies only to'),
    (dict(segmentation='uniform'), 'needs num_segments'),
    (dict(segmentation='uniform',
          num_segments=0), 'num_segments must be an int >= 1'),
    (dict(num_segments=4), 'num_segments applies only to'),
    (dict(chunk_size=0), 'chunk_size must be an int >= 1'),
    (dict(inner_lr=0.), 'inner_lr must be a number > 0'),
    (dict(linear_form='fast'), 'linear_form must be one of'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MemoryCachingAttention(16, 4, **kwargs)


def test_bad_heads_and_stream_modes():
    with pytest.raises(ValueError, match='num_heads .* must divide'):
        MemoryCachingAttention(16, 3)
    x = torch.randn(1, 5, 16)
    with pytest.raises(ValueError, match='causal=True'):
        MemoryCachingAttention(16, 4, causal=False).stream(x)
    with pytest.raises(ValueError, match="segmentation='constant'"):
        MemoryCachingAttention(16, 4, segmentation='logarithmic').stream(x)
    with pytest.raises(ValueError, match="segmentation='constant'"):
        MemoryCachingAttention(
            16, 4, segmentation='uniform', num_segments=2).stream(x)


def test_registry_build():
    from mmcached.registry import MODELS
    layer = MODELS.build(
        dict(
            type='MemoryCachingAttention',
            embed_dims=8,
            num_heads=2,
            aggregation='ssc',
            top_k=2))
    assert isinstance(layer, MemoryCachingAttention)
    assert layer(torch.randn(1, 5, 8)).shape == (1, 5, 8)


# --------------------------------------------------------------------------
# FLOP counting
# --------------------------------------------------------------------------
def _mc_flops(L, C, D=32, H=2, block=8):
    from mmengine.analysis import FlopAnalyzer
    layer = MemoryCachingAttention(
        D, H, segment_size=C, block_size=block, linear_form='state').eval()
    return FlopAnalyzer(layer, (torch.randn(1, L, D), )).total()


def test_flops_count_the_cost_model():
    """mmengine's analyzer counts the MC work: projections, gates, and per
    head the blocks (intra-block products, block states, prefix reads), the
    sums of earlier blocks within segments (R x R on the segment / slot grid,
    for key sums and states) and the cached read against the states each row
    block may read."""
    D, H, d, b, C = 32, 2, 16, 8, 16
    for L in (64, 128, 256):
        N, R = L // C, C // b
        proj = L * D * 3 * D + L * D * D + L * D * D  # qkv, u, out
        gates = H * L * (N - 1) * d
        blocks = H * (
            L * d * d + 2 * L * b * d + L * d * d + N * R * R * (d + d * d))
        # one row block of 256 rows here: every token reads N - 1 states
        cached = H * L * (N - 1) * d * d
        assert _mc_flops(L, C) == proj + gates + blocks + cached, L
    # at a fixed number of segments the mixing grows linearly in L
    f1, f2 = _mc_flops(512, 64), _mc_flops(1024, 128)
    p1, p2 = 5 * 512 * 32 * 32, 5 * 1024 * 32 * 32
    assert (f2 - p2) < 2.2 * (f1 - p1)


def test_flops_count_the_deep_memory():
    """The deep memory's chunk updates and reads are counted too: beyond the
    projections, and more than linearly in L at constant segments (the
    cached reads grow as N x L)."""
    from mmengine.analysis import FlopAnalyzer
    D = 32
    flops = {}
    for L in (32, 64):
        layer = MemoryCachingAttention(
            D, 2, memory='deep', segment_size=8, chunk_size=4).eval()
        proj = 5 * L * D * D
        flops[L] = FlopAnalyzer(layer, (torch.randn(1, L, D), )).total() - \
            proj
        assert flops[L] > proj  # the mixing outweighs the projections here
    assert flops[64] > 2 * flops[32]


# --------------------------------------------------------------------------
# CUDA, and flash-linear-attention's kernels (skipped without them)
# --------------------------------------------------------------------------
@cuda
@pytest.mark.parametrize('memory,aggregation,start,causal', [
    ('linear', 'grm', 'checkpoint', True),
    ('linear', 'ssc', 'restart', False),
    ('linear', 'residual', 'checkpoint', False),
    ('deep', 'grm', 'checkpoint', True),
    ('deep', 'soup', 'restart', False),
])
def test_cuda_equals_loop(memory, aggregation, start, causal):
    """On the GPU in float64 (the PyTorch path): outputs and gradients
    equal the reference loop's."""
    _check_fast_equals_loop(memory, aggregation, start, causal, 'cuda')


def _fla_twins(seed=0, **kw):
    """The same float32 CUDA layer with kernel='fla' and kernel='torch'."""
    kw.setdefault('linear_form', 'state')
    layers = []
    for kernel in ('fla', 'torch'):
        torch.manual_seed(seed)
        layer = MemoryCachingAttention(64, 4, kernel=kernel, **kw)
        layer.init_weights()
        layers.append(layer.cuda())
    return layers


def _outputs_and_grads(layer, x, w):
    x = x.clone().requires_grad_()
    y = layer(x)
    grads = torch.autograd.grad((y * w).sum(), [x] + list(layer.parameters()))
    return [y.detach()] + list(grads)


@needs_fla
@pytest.mark.parametrize('aggregation,start,segmentation,causal', [
    ('grm', 'checkpoint', 'constant', True),
    ('residual', 'restart', 'constant', False),
    ('ssc', 'checkpoint', 'uniform', False),
    ('soup', 'restart', 'logarithmic', True),
])
def test_fla_equals_torch(aggregation, start, segmentation, causal):
    """kernel='fla' against the PyTorch path: outputs and gradients (input
    and every parameter) of a float32 layer (d = 16, 203 tokens: segments
    of 64 with a last one of 11, or 3 uniform ones, or logarithmic ones)
    against the float64 result: within 5e-3 of its largest value (fla's
    float32 products run in TF32), where the PyTorch path in float32 is
    within 1e-4."""
    seg = dict(
        constant=dict(segment_size=64),
        uniform=dict(segmentation='uniform', num_segments=3),
        logarithmic=dict(segmentation='logarithmic'))[segmentation]
    kw = dict(aggregation=aggregation, segment_start=start, causal=causal)
    if aggregation == 'ssc':
        kw['top_k'] = 1
    fla, plain = _fla_twins(**kw, **seg)
    x = torch.randn(2, 203, 64, device='cuda')
    w = torch.randn(2, 203, 64, device='cuda')
    exact = _outputs_and_grads(plain.double(), x.double(), w.double())
    plain.float()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ours = _outputs_and_grads(plain, x, w)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    theirs = _outputs_and_grads(fla, x, w)
    for a, b, e in zip(theirs, ours, exact):
        scale = e.abs().max().clamp_min(1e-6)
        assert ((b.double() - e).abs().max() / scale) < 1e-4
        assert ((a.double() - e).abs().max() / scale) < 5e-3


@needs_fla
def test_fla_stream_equals_one_pass():
    """Streaming with the fla kernels (pieces ending inside segments carry
    their state in as fla's initial state) gives the one-pass output."""
    fla, _ = _fla_twins(segment_size=32)
    x = torch.randn(2, 150, 64, device='cuda')
    with torch.no_grad():
        whole = fla(x)
        state, parts = None, []
        for piece in x.split([17, 40, 64, 29], dim=1):
            y, state = fla.stream(piece, state)
            parts.append(y)
    assert (torch.cat(parts, 1) - whole).abs().max() < \
        5e-3 * whole.abs().max()


@cuda
@pytest.mark.parametrize('kw', [
    dict(kernel='torch'),
    dict(kernel='torch', linear_form='token', segment_size=4),
    dict(
        kernel='torch',
        segmentation='uniform',
        num_segments=3,
        segment_size=None,
        causal=False),
    dict(memory='deep', chunk_size=8),
])
def test_cuda_step_does_not_sync(kw):
    """Forward and backward on the GPU never wait for it (no tensor read
    back), so the host keeps queueing kernels ahead: index tensors are made
    on the CPU and sent without a sync, row blocks come from Python."""
    kw = dict(dict(segment_size=16), **kw)
    layer = MemoryCachingAttention(64, 4, **kw).cuda()
    x = torch.randn(2, 100, 64, device='cuda', requires_grad=True)
    layer(x).sum().backward()  # first calls may compile and sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        layer(x).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')


def test_fla_kernel_errors():
    """kernel must be one of the three; 'fla' serves the linear memory and
    fails at build time where it cannot run."""
    with pytest.raises(ValueError, match='kernel must be one of'):
        MemoryCachingAttention(8, 2, kernel='triton')
    with pytest.raises(ValueError, match="serves memory='linear' only"):
        MemoryCachingAttention(8, 2, memory='deep', kernel='fla')
    if not fla_available():
        with pytest.raises(ValueError, match='pip install fla-core'):
            MemoryCachingAttention(8, 2, kernel='fla')


def test_options_are_one_typed_frozen_object(monkeypatch):
    """MCOptions: the layer's arguments validated once, shared as is with
    the engine and the reference."""
    import dataclasses
    opts = MCOptions()
    assert opts.segment_size == 256 and opts.streamable
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.segment_size = 8
    assert MCOptions(segmentation='uniform', num_segments=3) \
        .segment_lengths(10) == [4, 3, 3]
    with pytest.raises(ValueError, match="did you mean 'grm'"):
        MCOptions(aggregation='gmr')
    layer = MemoryCachingAttention(16, 2, segment_size=4, aggregation='soup')
    assert layer.options == MCOptions(segment_size=4, aggregation='soup')
    # the layer hands its own object to the engine
    seen = []
    from mmcached.models.layers.memory_caching import layer as layer_module
    real = layer_module.chunk_memory_caching

    def spy(*args, **kwargs):
        seen.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(layer_module, 'chunk_memory_caching', spy)
    layer(torch.randn(1, 6, 16))
    assert seen == [layer.options] and seen[0] is layer.options
