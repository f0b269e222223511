# Ablation of the digits GRC config: the mix switched off (lam = -30,
# sigma(lam) ~ 1e-13): the cache layer is built, updated and trained, but
# its attention reaches the output with weight ~0 and self-attention is not
# down-weighted; the positional conv stays. Tells the mix's effect apart
# from the rest of the layer.
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(lam_init=-30.)))
