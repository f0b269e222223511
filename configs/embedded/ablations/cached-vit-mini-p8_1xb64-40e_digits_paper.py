# Ablation of the digits GRC config: the paper's equations (mode='paper':
# summary from the layer input, no GELU + LN in the candidate, cache
# attention projected to all channels, lam initialised at 0, no positional
# conv) instead of the released module.
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(mode='paper')))
