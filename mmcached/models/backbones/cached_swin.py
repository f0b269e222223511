"""Cached Swin: mmdet's Swin Transformer with GRC attention in its blocks.

mmdet's ``SwinTransformer`` is the base (not mmpretrain's): it is the one the
Mask R-CNN / RetinaNet Swin configs use, its keys are those of mmdet's
``swin_converter``, and its multi-scale NCHW outputs (returned here as a
tuple) also feed mmpretrain's ``GlobalAveragePooling`` neck + linear head.
"""
import warnings

import torch
import torch.nn as nn
from mmdet.models.backbones.swin import ShiftWindowMSA, SwinTransformer
from mmengine.utils import to_2tuple

from mmcached.registry import MODELS
from ._utils import (bind_base_args, check_cache_lens, check_grc_options,
                     check_sr_grid, grid_per_stage, init_grc_then, make_grc,
                     merge_arch, select_layers)


class CachedShiftWindowMSA(ShiftWindowMSA):
    """(Shifted) window attention mixed with GRC attention over the stage.

    ``o_self`` is the window-attention output after window reverse and the
    reverse shift, before drop path; the cache attention is global over the
    stage's tokens (with its cache spatially reduced by ``grc.sr_ratio``).

    Args:
        grc (GRCAttention): The cache attention of this block.
        **kwargs: Arguments of :class:`ShiftWindowMSA`.
    """

    def __init__(self, *args, grc: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.grc = grc
        # Drop path must act on the mixed output, not on o_self alone; it has
        # no weights, so moving it keeps the base state dict unchanged.
        self.drop_path, self.drop = self.drop, nn.Identity()

    def forward(self, query, hw_shape):
        """query: (B, H*W, C) normed tokens; returns (B, H*W, C), before the
        block's residual."""
        o_self = super().forward(query, hw_shape)  # self.drop is Identity
        return self.drop_path(self.grc(query, o_self, hw_shape))


@MODELS.register_module()
class CachedSwin(SwinTransformer):
    """Swin Transformer (mmdet's ``SwinTransformer``) with GRC attention.

    The ``attn`` of each selected block becomes a
    :class:`CachedShiftWindowMSA`; base keys are unchanged and the GRC ones
    are ``stages.{stage}.blocks.{block}.attn.grc.*``.

    The cache of a stage holds its token grid at ``pretrain_img_size`` (56,
    28, 14, 7 at 224 with patch 4). Attending from every token to the full
    56x56 cache of stage 1 would cost about 2 GFLOPs per block, more than the
    whole Swin-T; so, as PVT does for its keys, the cache is spatially
    reduced before attention: ``cache_sr_ratios`` defaults to (8, 4, 2, 1),
    giving 7x7 cache keys in every stage (for 224 px pretraining).

    Args:
        arch (str | dict, optional): ``'tiny'``, ``'small'``, ``'base'`` or a
            dict of base arguments. Default: None (the base's defaults,
            i.e. Swin-T).
        cache_ratio (float): Share of channels through the cache. Default 0.5.
        cache_lens (Sequence, optional): Per stage: None (default: the
            stage's grid at ``pretrain_img_size``), an int (only where
            ``cache_sr_ratios`` is 1) or an (h, w) grid.
        cache_sr_ratios (Sequence[int]): Spatial reduction of each stage's
            cache. Default: (8, 4, 2, 1).
        cached_stages (Sequence[int], optional): Stages with GRC. Default all.
        cached_layers (Sequence[int], optional): Blocks with GRC, counted over
            the whole backbone. Default: all of cached_stages.
        grc_mode (str): ``'released'`` (default) or ``'paper'``.
        reset_cache (bool): Zero every cache after ``init_weights``. Default:
            False.
        grc_cfg (dict, optional): Extra arguments of ``GRCAttention``.
        **kwargs: Arguments of mmdet's ``SwinTransformer`` (``out_indices``,
            ``frozen_stages``, ``with_cp``,
            ``drop_path_rate``,
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
                 cache_ratio=0.5,
                 cache_lens=None,
                 cache_sr_ratios=(8, 4, 2, 1),
                 cached_stages=None,
                 cached_layers=None,
                 grc_mode='released',
                 reset_cache=False,
                 grc_cfg=None,
                 **kwargs):
        name = type(self).__name__
        grc_cfg = check_grc_options(name, cache_ratio, grc_mode, grc_cfg)
        kwargs = merge_arch(self.arch_zoo, arch, kwargs, name)
        args = bind_base_args(SwinTransformer.__init__, kwargs)
        depths = list(args['depths'])
        num_stages = len(depths)
        if not isinstance(cache_sr_ratios, (list, tuple)) or \
                len(cache_sr_ratios) != num_stages or not all(
                    isinstance(r, int) and r >= 1 for r in cache_sr_ratios):
            raise ValueError(f'{name}: cache_sr_ratios must be {num_stages} '
                             f'positive ints, got {cache_sr_ratios!r}')
        selected = select_layers(name, depths, cached_stages, cached_layers)
        img_size = to_2tuple(args['pretrain_img_size'])
        if len(img_size) == 1:
            img_size = to_2tuple(img_size[0])
        lens = check_cache_lens(name, cache_lens, num_stages,
                                grid_per_stage(img_size, args['strides']))
        for i, sr in enumerate(cache_sr_ratios):
            if selected[i]:
                check_sr_grid(name, i, lens[i], sr)

        super().__init__(**kwargs)
        self.reset_cache = reset_cache
        self.cache_ratio = cache_ratio
        self.grc_mode = grc_mode
        self.cache_lens = lens
        self.cache_sr_ratios = tuple(cache_sr_ratios)
        self.cached_layer_ids = [sorted(s) for s in selected]

        dpr = torch.linspace(0, args['drop_path_rate'], sum(depths)).tolist()
        cur = 0
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                if j not in selected[i]:
                    continue
                old = block.attn
                embed_dims = old.w_msa.embed_dims
                grc = make_grc(
                    embed_dims,
                    old.w_msa.num_heads,
                    lens[i],
                    cache_ratio,
                    grc_mode,
                    sr_ratio=cache_sr_ratios[i],
                    **{'qkv_bias': args['qkv_bias'], **grc_cfg})
                # Built with the arguments SwinBlock gives its attention.
                attn = CachedShiftWindowMSA(
                    embed_dims=embed_dims,
                    num_heads=old.w_msa.num_heads,
                    window_size=old.window_size,
                    shift_size=old.shift_size,
                    qkv_bias=args['qkv_bias'],
                    qk_scale=args['qk_scale'],
                    attn_drop_rate=args['attn_drop_rate'],
                    proj_drop_rate=args['drop_rate'],
                    dropout_layer=dict(
                        type='DropPath', drop_prob=dpr[cur + j]),
                    grc=grc)
                missing, unexpected = attn.load_state_dict(
                    old.state_dict(), strict=False)
                assert not unexpected and all(
                    k.startswith('grc.') for k in missing)
                block.attn = attn
            cur += len(stage.blocks)

    def init_weights(self):
        """Base init (from scratch or Pretrained), GRC layers initialised
        too; with ``reset_cache`` every cache is zeroed afterwards."""
        init_grc_then(self, super().init_weights)

    def forward(self, x):
        """x: (B, C, H, W) -> tuple of (B, C_i, H_i, W_i) per out index."""
        return tuple(super().forward(x))
