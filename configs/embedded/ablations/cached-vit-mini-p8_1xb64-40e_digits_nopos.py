# Ablation of the digits GRC config: no 3x3 positional conv (the released
# module adds one; the paper's equations have none).
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(pos_conv=False)))
