# Mask R-CNN with a cached mini PVT (GRC attention) + FPN on the embedded
# shapes set, 10 epochs at batch 4 on one CPU: ../pvt/
# mask-rcnn_cached-pvt-t_fpn_1x_coco.py shrunk to 2 CPU cores. The data is
# generated (128x128 images, circles / squares / triangles of 14-56 px, masks
# as polygons); "mini" is a PVT with 16-128 channels and one layer per stage,
# with a 64-channel FPN and heads, trained from scratch. Only data, image
# scale, schedule and model size differ from the COCO config; the uncached
# twin, mask-rcnn_pvt-mini_fpn_1xb4-10e_shapes.py, sets `cached_stages=[]`.
# A missing or empty data_root is generated (a few seconds, the same files as
# `python tools/misc/make_shapes.py --out data/shapes`).
_base_ = '../pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py'

data_root = 'data/shapes/'
img_scale = (128, 128)
channels = 64
num_classes = 3
checkpoint = None  # trained from scratch
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # a dict instead of the base's 'tiny'
            embed_dims=16,
            num_layers=[1, 1, 1, 1],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4]),
        pretrain_img_size=img_scale[0],
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        # Objects of 14-56 px: anchors from 16 px at stride 4.
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(
            in_channels=channels, fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(
            in_channels=channels,
            conv_out_channels=channels,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)),
    init_cfg=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    # A persistent worker's random state cannot be restored on resume.
    persistent_workers=False,
    dataset=dict(
        type='ShapesDataset',
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        type='ShapesDataset',
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_epochs = 10
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=10.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=150),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
