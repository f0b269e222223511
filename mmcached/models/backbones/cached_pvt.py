"""Cached PVT and PVTv2: mmdet's backbones with GRC attention in their
encoder layers."""
import torch
import torch.nn as nn
from mmdet.models.backbones.pvt import (PVTEncoderLayer,
                                        PyramidVisionTransformer,
                                        PyramidVisionTransformerV2,
                                        SpatialReductionAttention, pvt_convert)
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import (_load_checkpoint_with_prefix,
                                        load_state_dict)
from mmengine.utils import to_2tuple

from mmcached.registry import MODELS
from ._utils import (bind_base_args, check_cache_lens, check_grc_options,
                     check_sr_grid, grid_per_stage, init_grc_then, make_grc,
                     merge_arch, select_layers)


class CachedSpatialReductionAttention(SpatialReductionAttention):
    """PVT's spatial-reduction attention mixed with GRC attention.

    Same arguments as :class:`SpatialReductionAttention` plus ``grc`` (a
    :class:`GRCAttention`). Parameter names of the base are unchanged; the
    GRC ones live under ``grc.``.

    Args:
        grc (GRCAttention): The cache attention of this layer.
        **kwargs: Arguments of :class:`SpatialReductionAttention`.
    """

    def __init__(self, *args, grc: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.grc = grc
        # The base applies proj-dropout and drop-path to its own output just
        # before adding the identity; GRC must see the plain projection output
        # and the dropouts must act on the mixed one. Both have no weights, so
        # moving them keeps the state dict of the base unchanged.
        self.post_proj_drop, self.proj_drop = self.proj_drop, nn.Identity()
        self.post_dropout_layer, self.dropout_layer = \
            self.dropout_layer, nn.Identity()

    def forward(self, x, hw_shape, identity=None):
        """x: (B, N, D) normed tokens on an ``hw_shape`` grid; returns
        ``identity + drop_path(proj_drop(mix))`` (B, N, D)."""
        if identity is None:
            identity = x
        # With identity=0 and the dropouts moved out, the base forward returns
        # exactly its attention output after the output projection.
        o_self = super().forward(x, hw_shape, identity=0)
        out = self.grc(x, o_self, hw_shape)
        return identity + self.post_dropout_layer(self.post_proj_drop(out))


class _CachedPVTMixin:
    """GRC options and layer replacement shared by CachedPVT / CachedPVTv2."""

    arch_zoo: dict = {}

    def _setup(self, arch, cache_ratio, cache_lens, cached_stages,
               cached_layers, grc_mode, grc_cfg, kwargs):
        name = type(self).__name__
        grc_cfg = check_grc_options(name, cache_ratio, grc_mode, grc_cfg)
        kwargs = merge_arch(self.arch_zoo, arch, kwargs, name)
        args = bind_base_args(PyramidVisionTransformer.__init__, kwargs)
        num_layers = list(args['num_layers'])
        selected = select_layers(name, num_layers, cached_stages,
                                 cached_layers)
        img_size = to_2tuple(args['pretrain_img_size'])
        if len(img_size) == 1:
            img_size = to_2tuple(img_size[0])
        # Released faithfulness: the cache holds one token per patch of the
        # stage at the pretraining resolution, on its (h, w) grid.
        grids = grid_per_stage(img_size, args['strides'])
        lens = check_cache_lens(name, cache_lens, len(num_layers), grids)
        for i, sr in enumerate(args['sr_ratios']):
            if selected[i]:
                check_sr_grid(name, i, lens[i], sr)
        return kwargs, args, dict(
            selected=selected,
            lens=lens,
            cache_ratio=cache_ratio,
            grc_mode=grc_mode,
            grc_cfg=grc_cfg)

    def _add_grc(self, args, opts):
        self.cache_ratio = opts['cache_ratio']
        self.grc_mode = opts['grc_mode']
        self.cache_lens = opts['lens']
        self.cached_layer_ids = [sorted(s) for s in opts['selected']]
        # the base's stochastic depth rule
        dpr = torch.linspace(0, args['drop_path_rate'],
                             sum(args['num_layers'])).tolist()
        cur = 0
        for i, stage in enumerate(self.layers):
            blocks = [m for m in stage[1] if isinstance(m, PVTEncoderLayer)]
            embed_dims = args['embed_dims'] * args['num_heads'][i]
            for j, block in enumerate(blocks):
                if j not in opts['selected'][i]:
                    continue
                grc = make_grc(
                    embed_dims,
                    args['num_heads'][i],
                    opts['lens'][i],
                    opts['cache_ratio'],
                    opts['grc_mode'],
                    sr_ratio=args['sr_ratios'][i],
                    **{'qkv_bias': args['qkv_bias'], **opts['grc_cfg']})
                # Built with the arguments PVTEncoderLayer gives its attention.
                attn = CachedSpatialReductionAttention(
                    embed_dims=embed_dims,
                    num_heads=args['num_heads'][i],
                    attn_drop=args['attn_drop_rate'],
                    proj_drop=args['drop_rate'],
                    dropout_layer=dict(
                        type='DropPath', drop_prob=dpr[cur + j]),
                    qkv_bias=args['qkv_bias'],
                    norm_cfg=args['norm_cfg'],
                    sr_ratio=args['sr_ratios'][i],
                    grc=grc)
                # Keep the weights the base built (same RNG stream as an
                # uncached backbone before init_weights).
                missing, unexpected = attn.load_state_dict(
                    block.attn.state_dict(), strict=False)
                assert not unexpected and all(
                    k.startswith('grc.') for k in missing)
                block.attn = attn
            cur += len(blocks)

    def init_weights(self):
        """Base init (from scratch, or a Pretrained checkpoint, which may lack
        GRC keys), GRC layers initialised too; with ``reset_cache`` every
        cache is zeroed afterwards."""
        init_grc_then(self, self._init_base_weights)

    def _init_base_weights(self):
        cfg = self.init_cfg
        prefix = cfg.get('prefix') if isinstance(cfg, dict) else None
        if not prefix:
            return super().init_weights()
        # mmdet's PVT ignores init_cfg.prefix and would match no key of a
        # classifier checkpoint ('backbone.*'), leaving random weights.
        state = _load_checkpoint_with_prefix(
            prefix, cfg['checkpoint'], map_location='cpu')
        if self.convert_weights:
            state = pvt_convert(state)
        own = [k for k in self.state_dict() if '.grc.' not in k]
        if not any(k in state for k in own):
            raise ValueError(
                f'{type(self).__name__}: no weight of checkpoint '
                f'{cfg["checkpoint"]!r} under prefix {prefix!r} matches this '
                'backbone; check the prefix and convert_weights (False for '
                'checkpoints saved by mmdet / mmpretrain / mmcached)')
        load_state_dict(
            self, state, strict=False, logger=MMLogger.get_current_instance())

    def forward(self, x):
        """x: (B, C, H, W) -> tuple of (B, C_i, H_i, W_i) per out index (a
        tuple, which mmpretrain's necks require and mmdet's accept)."""
        return tuple(super().forward(x))


_GRC_ARGS_DOC = """
        cache_ratio (float): Share r of each layer's channels that go through
            the cache. Default: 0.5.
        cache_lens (Sequence, optional): Per stage, the cache length: None
            (default: the stage's token grid at ``pretrain_img_size``), an int
            (only for stages without spatial reduction) or an (h, w) grid.
        cached_stages (Sequence[int], optional): Stages with GRC. Default:
            all.
        cached_layers (Sequence[int], optional): Encoder layers with GRC,
            counted over the whole backbone. Default: all of cached_stages.
        grc_mode (str): ``'released'`` (default) or ``'paper'``.
        reset_cache (bool): Zero every cache after ``init_weights`` (which may
            load a Pretrained checkpoint), as the paper does for detection
            fine-tuning. Caches loaded later (``load_from``, resume) are kept.
            Default: False.
        grc_cfg (dict, optional): Extra arguments of ``GRCAttention``
            (``pos_conv``, ``lam_init``, ``sync_cache``, ``qkv_bias`` ...).
        **kwargs: Arguments of the base backbone (``embed_dims``,
            ``num_layers``, ``out_indices``, ``drop_path_rate``,
            ``init_cfg`` ...); they override the arch settings.
"""


@MODELS.register_module()
class CachedPVT(_CachedPVTMixin, PyramidVisionTransformer):
    __doc__ = """PVT (mmdet's ``PyramidVisionTransformer``) with GRC attention.

    Each selected encoder layer's ``attn`` becomes a
    :class:`CachedSpatialReductionAttention`; all base keys are unchanged and
    the GRC ones are ``layers.{stage}.1.{j}.attn.grc.*`` (j = layer + 1:
    the stage's position embedding is ``layers.{stage}.1.0``). The cache
    attention of a stage reduces the cache like the stage reduces its keys
    (``sr_ratios``), as the released code does.

    Args:
        arch (str | dict, optional): ``'tiny'``, ``'small'``, ``'medium'``,
            ``'large'`` or a dict of base arguments. Default: None (the base's
            own defaults, which are PVT-Small).
    """ + _GRC_ARGS_DOC
    arch_zoo = {
        name: dict(embed_dims=64, num_heads=[1, 2, 5, 8], num_layers=layers)
        for name, layers in dict(
            tiny=[2, 2, 2, 2],
            small=[3, 4, 6, 3],
            medium=[3, 4, 18, 3],
            large=[3, 8, 27, 3]).items()
    }

    def __init__(self,
                 arch=None,
                 cache_ratio=0.5,
                 cache_lens=None,
                 cached_stages=None,
                 cached_layers=None,
                 grc_mode='released',
                 reset_cache=False,
                 grc_cfg=None,
                 **kwargs):
        kwargs, args, opts = self._setup(arch, cache_ratio, cache_lens,
                                         cached_stages, cached_layers,
                                         grc_mode, grc_cfg, kwargs)
        super().__init__(**kwargs)
        self.reset_cache = reset_cache
        self._add_grc(args, opts)


@MODELS.register_module()
class CachedPVTv2(_CachedPVTMixin, PyramidVisionTransformerV2):
    __doc__ = """PVTv2 (mmdet's ``PyramidVisionTransformerV2``) with GRC.

    Same options as :class:`CachedPVT`; GRC keys are
    ``layers.{stage}.1.{layer}.attn.grc.*`` (no position embedding).

    Args:
        arch (str | dict, optional): ``'b0'`` ... ``'b5'`` or a dict of base
            arguments. Default: None (the base's defaults, i.e. PVTv2-B2
            layers with embed_dims 64).
    """ + _GRC_ARGS_DOC
    arch_zoo = {
        'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
        'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
        'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
        'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
        'b4': dict(embed_dims=64, num_layers=[3, 8, 27, 3]),
        'b5': dict(
            embed_dims=64, num_layers=[3, 6, 40, 3], mlp_ratios=[4, 4, 4, 4]),
    }

    def __init__(self,
                 arch=None,
                 cache_ratio=0.5,
                 cache_lens=None,
                 cached_stages=None,
                 cached_layers=None,
                 grc_mode='released',
                 reset_cache=False,
                 grc_cfg=None,
                 **kwargs):
        kwargs, args, opts = self._setup(arch, cache_ratio, cache_lens,
                                         cached_stages, cached_layers,
                                         grc_mode, grc_cfg, kwargs)
        super().__init__(**kwargs)
        self.reset_cache = reset_cache
        self._add_grc(args, opts)
