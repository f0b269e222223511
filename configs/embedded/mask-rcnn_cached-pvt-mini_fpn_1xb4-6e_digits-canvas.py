# Mask R-CNN with a cached mini PVT (GRC attention) + FPN on the embedded
# digits canvas set, 6 epochs at batch 4 on one CPU, fine-tuned from the
# classifier of cached-pvt-mini_1xb64-40e_digits.py with its caches reset:
# the paper's protocol (ImageNet-pretrained cached backbone, caches reset,
# COCO fine-tuning) at embedded scale, as ../pvt/
# mask-rcnn_cached-pvt-t_fpn_1x_coco.py is at full scale. The data is
# generated from sklearn's 8x8 digits (64x64 grey canvases, 1-4 real
# handwritten digits of 20-32 px each, classes '0'-'9', masks of the visible
# strokes as RLE; val canvases use only the classifier's val digits); the
# model is the embedded shapes detector's (same mini PVT, 64-channel FPN and
# heads) with the backbone's cache grids at the classifier's 32 px. No flips:
# digits must not be mirrored. `checkpoint` is the pretraining run's last
# epoch; another one with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (`bash tools/run_embedded.sh digits-det` trains both, in order). The
# uncached twin, mask-rcnn_pvt-mini_fpn_1xb4-6e_digits-canvas.py, sets
# `cached_stages=[]` and starts from pvt-mini_1xb64-40e_digits.py.
# A missing or empty data_root is generated (a few seconds, the same files as
# `python tools/misc/make_digits_canvas.py --out data/digits_canvas`).
_base_ = './mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'

data_root = 'data/digits_canvas/'
img_scale = (64, 64)
num_classes = 10
checkpoint = 'work_dirs/cached-pvt-mini_1xb64-40e_digits/epoch_40.pth'
model = dict(
    # the classifier's normalisation (grey images, to [-1, 1])
    data_preprocessor=dict(
        mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=False),
    backbone=dict(
        # the classifier's: position embeddings and cache grids (8x8 ... 1x1)
        # of its 32 px images; position embeddings are resized to 64 px
        pretrain_img_size=32,
        reset_cache=True,
        init_cfg=dict(
            _delete_=True,  # None in the shapes config
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='backbone.')),
    rpn_head=dict(
        # Digits of 20-32 px: anchors from 24 px at stride 4.
        anchor_generator=dict(scales=[6])),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)),
    # At most 4 digits a canvas: fewer proposals and RoIs than on shapes
    # (about 20% faster).
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # No RandomFlip: a mirrored digit is not a digit.
    dict(type='PackDetInputs')
]
# the shapes config's test pipeline, resized to this img_scale
test_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(
    dataset=dict(
        type='DigitsCanvasDataset',
        data_root=data_root,
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type='DigitsCanvasDataset',
        data_root=data_root,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 6
# the shapes config's warm-up and cosine decay, ended at this max_epochs
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
