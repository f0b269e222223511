# PVTv2-B2 on ImageNet-1k with Memory Caching in place of its
# spatial-reduction attention (MC-PVTv2-B2): cached-pvtv2-b2_8xb128_in1k.py
# with another cache layer. Each layer mixes all its tokens (no reduction of
# the keys) with a linear memory over a bidirectional scan in 16 segments,
# gated over the cached segment states (GRM), with the layer's own q / k / v
# / output projections. A fixed number of segments keeps the cost linear in
# the tokens at detection sizes too. The uncached twin is
# pvtv2-b2_8xb128_in1k.py.
_base_ = ['./cached-pvtv2-b2_8xb128_in1k.py', '../_base_/cache/mc.py']

model = dict(
    backbone=dict(
        cache_cfg=dict(_delete_=True, num_segments=16, **_base_.mc_cache_cfg)))
