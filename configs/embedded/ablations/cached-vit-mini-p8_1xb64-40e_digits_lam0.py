# Ablation of the digits GRC config: lam initialised at 0 (the paper's; the
# released module's -1 is our default), so sigma(lam) = 0.5 at the start.
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(lam_init=0.)))
