# Ablation of the shapes GRC detector: the mix switched off (lam = -30,
# sigma(lam) ~ 1e-13): the cache layer is built, updated and trained, but
# its attention reaches the output with weight ~0 and self-attention is not
# down-weighted (x 0.73 at the released init); the positional conv stays.
_base_ = '../mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'

model = dict(backbone=dict(cache_cfg=dict(lam_init=-30.)))
