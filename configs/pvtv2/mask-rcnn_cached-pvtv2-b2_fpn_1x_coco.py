# Mask R-CNN with cached PVTv2-B2 + FPN, COCO 1x: the recipe of
# ../pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py with the PVTv2-B2 backbone,
# started from the cached ImageNet run of cached-pvtv2-b2_8xb128_in1k.py, its
# caches reset to zeros.
_base_ = '../pvt/mask-rcnn_cached-pvt-t_fpn_1x_coco.py'
checkpoint = 'work_dirs/cached-pvtv2-b2_8xb128_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        _delete_=True,  # PVTv2 fixes norm_after_stage itself
        type='CachedPVTv2',
        arch='b2',
        cache_cfg=dict(type='GRCAttention', cache_ratio=0.5, mode='released'),
        reset_cache=True,
        out_indices=(0, 1, 2, 3),
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
