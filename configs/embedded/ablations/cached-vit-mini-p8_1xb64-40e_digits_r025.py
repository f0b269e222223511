# Ablation of the digits GRC config: cache ratio 0.25 (16 of 64 channels)
# instead of 0.5.
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(cache_ratio=0.25)))
