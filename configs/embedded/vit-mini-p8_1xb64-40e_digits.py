# The uncached twin of cached-vit-mini-p8_1xb64-40e_digits.py: the same
# config with nothing cached (mmpretrain's VisionTransformer layer for layer,
# weight name for weight name).
_base_ = './cached-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cached_stages=[]))
