# What the PVT / PVTv2 detection configs (Mask R-CNN and RetinaNet on COCO,
# ../pvt/ and ../pvtv2/) share besides their detector and data: the recipe of
# mmdet's PVT detection configs (its schedule_1x.py, 12 epochs at batch 16 =
# 8 GPUs x 2, with AdamW, lr 1e-4 (Mask R-CNN sets 2e-4) and wd 1e-4), the
# runtime, and the backbones, as variables. A detection config sets
# `model.backbone` from one (after `_delete_=True`, which drops the base
# detector's ResNet). Each starts from the ImageNet run of the same model,
# its caches reset to zeros as in the paper; our checkpoints have mmdet's
# weight names already.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', './cache_runtime.py', './cache/grc.py',
    './cache/mc.py'
]

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))

# the run of ../pvt/cached-pvt-tiny_8xb128_in1k.py (its norm_after_stage
# matches); sizes and uncached twins set `arch` / `cached_stages=[]` and
# their own checkpoint
checkpoint = 'work_dirs/cached-pvt-tiny_8xb128_in1k/epoch_300.pth'
cached_pvt_t_backbone = dict(
    type='CachedPVT',
    arch='tiny',
    cache_cfg=_base_.grc_cache_cfg,
    reset_cache=True,
    norm_after_stage=True,
    out_indices=(0, 1, 2, 3),
    convert_weights=False,
    init_cfg=dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
# the run of ../pvtv2/cached-pvtv2-b2_8xb128_in1k.py (PVTv2 fixes
# norm_after_stage itself), the `checkpoint` of the PVTv2 configs
cached_pvtv2_b2_backbone = dict(
    type='CachedPVTv2',
    arch='b2',
    cache_cfg=_base_.grc_cache_cfg,
    reset_cache=True,
    out_indices=(0, 1, 2, 3),
    convert_weights=False,
    init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/cached-pvtv2-b2_8xb128_in1k/epoch_300.pth',
        prefix='backbone.'))
# the same with Memory Caching (16 segments), from the run of
# ../pvtv2/mc-pvtv2-b2_8xb128_in1k.py, the `checkpoint` of the MC configs
mc_pvtv2_b2_backbone = dict(
    cached_pvtv2_b2_backbone,
    cache_cfg=dict(num_segments=16, **_base_.mc_cache_cfg),
    init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/mc-pvtv2-b2_8xb128_in1k/epoch_300.pth',
        prefix='backbone.'))
