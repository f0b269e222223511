# Cached DeiT-Small on ImageNet-1k (recipe of cached-deit-tiny), the paper's
# ViT-S.
_base_ = './cached-deit-tiny_4xb256_in1k.py'

model = dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384))
