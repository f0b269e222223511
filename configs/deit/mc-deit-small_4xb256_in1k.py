# DeiT-Small on ImageNet-1k with Memory Caching in place of its softmax
# attention (MC-DeiT-S): cached-deit-small_4xb256_in1k.py with another cache
# layer. Each layer mixes its 197 tokens with a linear memory over a
# bidirectional scan in 8 segments, gated over the cached segment states
# (GRM), with the layer's own q / k / v / output projections (an uncached
# DeiT-S checkpoint loads; only MC's u projections are new). The uncached
# twin is deit-small_4xb256_in1k.py.
_base_ = ['./cached-deit-small_4xb256_in1k.py', '../_base_/cache/mc.py']

model = dict(
    backbone=dict(
        cache_cfg=dict(_delete_=True, num_segments=8, **_base_.mc_cache_cfg)))
