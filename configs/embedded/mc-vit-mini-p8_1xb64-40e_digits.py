# Memory Caching in place of the softmax attention of the mini ViT on the
# embedded digits set: cached-vit-mini-p8_1xb64-40e_digits.py with another
# cache layer. Each layer's token mixing is a linear memory over a
# bidirectional scan of the 17 tokens, cut into 4 segments whose final states
# are cached and read by every later token through per-head gates (GRM); it
# reuses the layer's own q / k / v / output projections. The uncached twin is
# vit-mini-p8_1xb64-40e_digits.py.
_base_ = ['./cached-vit-mini-p8_1xb64-40e_digits.py', '../_base_/cache/mc.py']

model = dict(
    backbone=dict(
        cache_cfg=dict(_delete_=True, num_segments=4, **_base_.mc_cache_cfg)))
