"""Cached Swin: mmdet's Swin Transformer with a cache layer in its blocks'
attention.

mmdet's ``SwinTransformer`` is the base (not mmpretrain's): it is the one the
Mask R-CNN / RetinaNet Swin configs use, its keys are those of mmdet's
``swin_converter``, and its multi-scale NCHW outputs (returned here as a
tuple) also feed mmpretrain's ``GlobalAveragePooling`` neck + linear head.
"""
from mmdet.models.backbones.swin import SwinTransformer

from mmcached.registry import MODELS
from .base import (CACHE_ARGS_DOC, CachedBackboneMixin, CacheSites, merge_arch,
                   stage_grids)


@MODELS.register_module()
class CachedSwin(CachedBackboneMixin, SwinTransformer):
    __doc__ = """Swin Transformer (mmdet's ``SwinTransformer``) with a
    cache layer in the (shifted) window attention of its selected blocks;
    the cache layer works over the whole stage.

    Base keys are unchanged; a cache layer's are
    ``stages.{stage}.blocks.{block}.attn.{name}.*``.

    The cache of a stage holds its token grid at ``pretrain_img_size`` (56,
    28, 14, 7 at 224 with patch 4). Attending from every token to the full
    56x56 cache of stage 1 would cost about 2 GFLOPs per block, more than the
    whole Swin-T; so, as PVT does for its keys, the cache is spatially
    reduced before attention: ``cache_sr_ratios`` defaults to (8, 4, 2, 1),
    giving 7x7 cache keys in every stage (for 224 px pretraining).

    Args:
        arch (str | dict, optional): ``'tiny'``, ``'small'``, ``'base'`` or a
            dict of base arguments. Default: None (the base's defaults,
            i.e. Swin-T).""" + CACHE_ARGS_DOC + """
        cache_sr_ratios (Sequence[int]): Spatial reduction of each stage's
            cache (the ``sr_ratio`` of its cache layers). Default:
            (8, 4, 2, 1).
        pretrain_img_size (int | tuple[int]): As the base; also sets the
            default cache grids. Default: 224.
        **kwargs: Arguments of mmdet's ``SwinTransformer`` (``out_indices``,
            ``frozen_stages``, ``with_cp``, ``drop_path_rate``,
            ``convert_weights``, ``init_cfg`` ...). Note that its Pretrained
            init only loads keys prefixed ``backbone.`` (as
            ``tools/model_converters/swin2mmcached.py`` writes them).
    """
    arch_zoo = {
        'tiny':
        dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
        'small':
        dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
        'base':
        dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    }

    def __init__(self,
                 arch=None,
                 cache_sr_ratios=(8, 4, 2, 1),
                 pretrain_img_size=224,
                 **kwargs):
        kwargs = merge_arch(self.arch_zoo, arch, kwargs, type(self).__name__)
        self._pretrain_size = pretrain_img_size
        self.cache_sr_ratios = cache_sr_ratios
        super().__init__(pretrain_img_size=pretrain_img_size, **kwargs)

    def cache_sites(self) -> CacheSites:
        ratios = self.cache_sr_ratios
        if not isinstance(ratios, (list, tuple)) or \
                len(ratios) != len(self.stages) or not all(
                    isinstance(r, int) and r >= 1 for r in ratios):
            raise ValueError(f'{type(self).__name__}: cache_sr_ratios must '
                             f'be {len(self.stages)} positive ints, got '
                             f'{ratios!r}')
        self.cache_sr_ratios = tuple(ratios)
        # each stage's stride: the patch embedding's, then the merging's
        strides = [self.patch_embed.projection.stride[0]] + [
            stage.downsample.sampler.stride[0] for stage in self.stages[:-1]
        ]
        return CacheSites([[block.attn for block in stage.blocks]
                           for stage in self.stages],
                          stage_grids(self._pretrain_size, strides),
                          dict(sr_ratio=list(ratios)))

    def forward(self, x):
        """x: (B, C, H, W) -> tuple of (B, C_i, H_i, W_i) per out index."""
        return tuple(super().forward(x))
