# COCO 2017 (instance): mmdet's coco_instance.py, read through
# CheckedCocoDataset (mmdet's CocoDataset), which names a missing path and
# the expected layout. Every COCO instance config of mmcached takes its data
# from here: set data_root once, below. Layout: data_root/{annotations/
# instances_{train,val}2017.json, train2017/, val2017/}.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

# MMCACHED_DATA_ROOT=/path/to/data in the environment (or, with mmcached's
# tools, --cfg-options data_root=/path/to/data) replaces the default.
data_root = '{{$MMCACHED_DATA_ROOT:data/coco}}/'
train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
