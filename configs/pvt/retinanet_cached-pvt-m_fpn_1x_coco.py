# RetinaNet with cached PVT-M + FPN, COCO 1x: retinanet_pvt-m_fpn_1x_coco.py with
# GRC attention. The backbone starts from the cached ImageNet run of
# configs/pvt/cached-pvt-medium_8xb128_in1k.py, with the caches reset to zeros
# (reset_cache=True) as in the paper.
data_root = 'data/coco/'
checkpoint = 'work_dirs/cached-pvt-medium_8xb128_in1k/epoch_300.pth'

_base_ = './retinanet_pvt-m_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        type='CachedPVT',
        cache_ratio=0.5,
        reset_cache=True,
        # our checkpoints already have mmdet's weight names
        convert_weights=False,
        init_cfg=dict(
            _delete_=True,  # the baseline's backbone has init_cfg=None
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='backbone.')),
    init_cfg=None)

train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
