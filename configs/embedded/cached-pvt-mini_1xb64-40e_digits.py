# A cached mini PVT (GRC attention) classifier on the embedded digits set, 40
# epochs at batch 64 on one CPU: ../pvt/cached-pvt-tiny_8xb128_in1k.py shrunk
# to 2 CPU cores. It is the "ImageNet pretraining" of the embedded paper
# protocol: mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py starts
# from its checkpoint, caches reset (`bash tools/run_embedded.sh digits-det`
# runs both). The data is sklearn's 8x8 digits upsampled to 32x32, built in
# memory (nothing to download), as for cached-vit-mini-p8_1xb64-40e_digits.py;
# "mini" is the PVT of the embedded shapes detector (16-128 channels, one
# layer per stage), with its cache grids at 32 px. Only data, image scale,
# schedule and model size differ from the ImageNet config; the uncached
# twin, pvt-mini_1xb64-40e_digits.py, sets `cached_stages=[]`.
_base_ = '../pvt/cached-pvt-tiny_8xb128_in1k.py'

img_size = 32
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # a dict instead of the base's 'tiny'
            embed_dims=16,
            num_layers=[1, 1, 1, 1],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4]),
        # also the cache grids, which the detector keeps (8x8 ... 1x1)
        pretrain_img_size=img_size,
        drop_path_rate=0.0,
        out_indices=(3, ),
        init_cfg=None),
    head=dict(num_classes=10, in_channels=128),
    # No Mixup / CutMix: they slow down such a short schedule.
    train_cfg=None)

data_preprocessor = dict(
    num_classes=10, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=False)
train_pipeline = [
    dict(type='Resize', scale=(img_size, img_size)),
    # Small shifts only: digits must not be flipped.
    dict(type='RandomCrop', crop_size=img_size, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='DigitsDataset',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=120,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='DigitsDataset',
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 40
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        end=2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=2,
        end=max_epochs)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
auto_scale_lr = dict(base_batch_size=64)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
