"""torch.compile: no graph break inside the cache layers (GRC and MC, in
training and eval), and activation checkpointing of GRC layers under
compile updates each cache once per step, as the eager model does."""
import os.path as osp

import pytest
import torch

import mmcached
from mmcached.models.backbones import CachedPVT, CachedSwin, CachedViT

OURS = osp.dirname(mmcached.__file__)
MC = dict(
    type='MemoryCachingAttention',
    segmentation='uniform',
    num_segments=3,
    causal=False)
VIT = dict(
    arch=dict(
        embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
    img_size=32,
    patch_size=8)
PVT = dict(
    embed_dims=8,
    num_layers=[1, 1, 1, 1],
    mlp_ratios=[2] * 4,
    pretrain_img_size=64)


def breaks_in_mmcached(model, x):
    """Graph breaks whose innermost frame is mmcached code."""
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_count >= 1
    return [(b.reason, b.user_stack[-1]) for b in explained.break_reasons
            if b.user_stack and b.user_stack[-1].filename.startswith(OURS)]


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize(
    'build,shape', [
        (lambda: CachedViT(**VIT), (2, 3, 32, 32)),
        (lambda: CachedViT(**VIT, cache_cfg=MC), (2, 3, 32, 32)),
        (lambda: CachedPVT(**PVT), (2, 3, 64, 64)),
    ],
    ids=['vit-grc', 'vit-mc', 'pvt-grc'])
def test_no_graph_break_in_cache_layers(build, shape, training):
    torch.manual_seed(0)
    model = build().train(training)
    x = torch.randn(*shape)
    before = [b.clone() for n, b in model.named_buffers() if 'memory' in n]
    assert breaks_in_mmcached(model, x) == []
    after = [b for n, b in model.named_buffers() if 'memory' in n]
    # the traced forward still updates the caches in training only
    changed = [not torch.equal(a, b) for a, b in zip(before, after)]
    assert all(changed) if training and before else not any(changed)


@pytest.mark.parametrize('cached', [False, True], ids=['pvt', 'cached-pvt'])
def test_pvt_traces_to_one_graph(cached):
    """mmdet's PVT keeps its position grids as numpy arrays, a graph break
    per stage under dynamo; with the compat layer's ints, PVT and CachedPVT
    trace to one graph (else the backbone's loop runs eagerly and its
    layers compile one by one)."""
    from mmdet.models.backbones import PyramidVisionTransformer
    model = CachedPVT(**PVT) if cached else PyramidVisionTransformer(**PVT)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model.train())(torch.randn(2, 3, 64, 64))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


@pytest.mark.slow
def test_compiled_checkpointing_updates_caches_once(
        assert_same_caches_and_grads):
    """CachedSwin with_cp, compiled (aot_eager: the graph partitioning of
    inductor, without its code generation), trains as the eager model
    without checkpointing: same caches and gradients after two steps."""
    tiny = dict(
        embed_dims=16,
        depths=(2, 1, 1, 1),
        num_heads=(1, 2, 4, 8),
        mlp_ratio=2,
        drop_path_rate=0.)
    torch.manual_seed(0)
    plain = CachedSwin(**tiny)
    plain.init_weights()
    cp = CachedSwin(**tiny, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    plain.train()
    cp.train()
    torch._dynamo.reset()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    for model, run in ((plain, plain), (cp,
                                        torch.compile(cp,
                                                      backend='aot_eager'))):
        for _ in range(2):
            model.zero_grad()
            sum(o.square().mean() for o in run(x)).backward()
    assert_same_caches_and_grads(plain, cp)


def test_dynamic_shapes_with_a_view_saved_for_backward():
    """The pattern of the cached PVT's multi-scale failure (issue 19): a
    token tensor viewed as NCHW (mmdet's ``nlc_to_nchw``) and saved for a
    convolution's backward. Compiled with dynamic shapes, inductor sorted
    the view's symbolic strides without its shape environment and raised
    (pytorch/pytorch#185510) until the compatibility layer set
    ``strict_output_strides``; now both sizes train and match eager."""
    import torch.nn.functional as F

    def reduce(x, w, hw):
        B, L, C = x.shape
        nchw = x.transpose(1, 2).reshape(B, C, *hw)
        return F.conv2d(nchw, w, stride=2).flatten(2).transpose(1, 2)

    torch._dynamo.reset()
    compiled = torch.compile(reduce, dynamic=True)
    w = torch.randn(8, 8, 2, 2, requires_grad=True)
    for side in (6, 10):
        x = torch.randn(2, side * side, 8, requires_grad=True)
        y = compiled(x, w, (side, side))
        grads = torch.autograd.grad(y.square().sum(), (x, w))
        ref = reduce(x, w, (side, side))
        ref_grads = torch.autograd.grad(ref.square().sum(), (x, w))
        assert torch.allclose(y, ref, atol=1e-5)
        for a, b in zip(grads, ref_grads):
            assert torch.allclose(a, b, atol=1e-4)


def test_one_graph_at_and_off_the_pretraining_size():
    """GRC resizes its summary to the cache length only where the lengths
    differ; while tracing the resize is always kept (nearest to the same
    length is the identity), so with dynamic shapes a training step at the
    pretraining size (64) and at others share one graph, where a guard on
    N == cache length recompiled at the first other size."""
    from torch._dynamo.testing import CompileCounter
    torch._dynamo.reset()
    model = CachedPVT(**PVT).train()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True)
    for side in (64, 96, 64, 128):
        sum(o.sum()
            for o in compiled(torch.randn(2, 3, side, side))).backward()
    assert counter.frame_count == 1
