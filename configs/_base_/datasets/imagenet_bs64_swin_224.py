# ImageNet-1k: mmpretrain's imagenet_bs64_swin_224.py, read through
# CheckedImageNet (mmpretrain's ImageNet), which names a missing path and the
# expected layout. Every ImageNet config of mmcached takes its data from
# here: set data_root once, below. Layout: data_root/{meta/train.txt,
# meta/val.txt, train/, val/}.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py'

# MMCACHED_DATA_ROOT=/path/to/data in the environment (or, with mmcached's
# tools, --cfg-options data_root=/path/to/data) replaces the default.
data_root = '{{$MMCACHED_DATA_ROOT:data/imagenet}}/'
train_dataloader = dict(
    dataset=dict(type='CheckedImageNet', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedImageNet', data_root=data_root))
test_dataloader = val_dataloader
