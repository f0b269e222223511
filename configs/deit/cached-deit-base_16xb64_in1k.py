# Cached DeiT-Base on ImageNet-1k: mmpretrain's deit-base_16xb64_in1k.py
# recipe (cached-deit-tiny's with drop path 0.1, 16 x 64 images and EMA).
_base_ = './cached-deit-tiny_4xb256_in1k.py'

model = dict(
    backbone=dict(arch='deit-base', drop_path_rate=0.1),
    head=dict(in_channels=768))
train_dataloader = dict(batch_size=64)
# a list replaces the base's (../_base_/cache_runtime.py): keep its hooks
custom_hooks = [
    dict(type='CacheStatsHook'),
    dict(type='ExactResumeHook'),
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]
