# Cached Swin-B on ImageNet-1k (recipe of cached-swin-tiny, drop path 0.5).
_base_ = './cached-swin-tiny_16xb64_in1k.py'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5),
    head=dict(in_channels=1024))
