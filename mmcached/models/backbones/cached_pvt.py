"""Cached PVT and PVTv2: mmdet's backbones with a cache layer in their
encoder layers' attention."""
from mmdet.models.backbones.pvt import (PVTEncoderLayer,
                                        PyramidVisionTransformer,
                                        PyramidVisionTransformerV2,
                                        pvt_convert)
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import (_load_checkpoint_with_prefix,
                                        load_state_dict)

from mmcached.registry import MODELS
from ..layers.cache_layer import BaseCacheLayer
from .base import (CACHE_ARGS_DOC, CachedBackboneMixin, CacheSites, merge_arch,
                   stage_grids)


class _CachedPVTMixin(CachedBackboneMixin):
    """CachedPVT and CachedPVTv2 alike (one ``__init__`` for both)."""

    arch_zoo: dict = {}

    def __init__(self, arch=None, pretrain_img_size=224, **kwargs):
        kwargs = merge_arch(self.arch_zoo, arch, kwargs, type(self).__name__)
        self._pretrain_size = pretrain_img_size
        super().__init__(pretrain_img_size=pretrain_img_size, **kwargs)

    def cache_sites(self) -> CacheSites:
        attentions = [[
            m.attn for m in stage[1] if isinstance(m, PVTEncoderLayer)
        ] for stage in self.layers]
        # As in the released code: one cache token per patch of the stage
        # at the pretraining size, on its grid (the cache attention reduces
        # it like the stage reduces its keys).
        return CacheSites(attentions,
                          stage_grids(self._pretrain_size, self.strides))

    def init_base_weights(self):
        cfg = self.init_cfg
        prefix = cfg.get('prefix') if isinstance(cfg, dict) else None
        if not prefix:
            return super().init_base_weights()
        # mmdet's PVT ignores init_cfg.prefix and would match no key of a
        # classifier checkpoint ('backbone.*'), leaving random weights.
        state = _load_checkpoint_with_prefix(
            prefix, cfg['checkpoint'], map_location='cpu')
        if self.convert_weights:
            state = pvt_convert(state)
        caches = tuple(n + '.' for n, m in self.named_modules()
                       if isinstance(m, BaseCacheLayer))
        own = [k for k in self.state_dict() if not k.startswith(caches)]
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


_PVT_DOC = """
        pretrain_img_size (int | tuple[int]): As the base; also sets the
            default cache grids. Default: 224.
        **kwargs: Arguments of the base backbone (``out_indices``,
            ``drop_path_rate``, ``convert_weights``, ``init_cfg`` ...); they
            override the arch's settings. ``init_cfg.prefix`` is honoured
            (mmdet's PVT ignores it).
"""


@MODELS.register_module()
class CachedPVT(_CachedPVTMixin, PyramidVisionTransformer):
    __doc__ = """PVT (mmdet's ``PyramidVisionTransformer``) with a cache
    layer in the attention of its selected encoder layers.

    Base keys are unchanged; a cache layer's are
    ``layers.{stage}.1.{j}.attn.{name}.*`` (j = layer + 1: the stage's
    position embedding is ``layers.{stage}.1.0``), e.g. ``...attn.grc.*``.

    Args:
        arch (str | dict, optional): ``'tiny'``, ``'small'``, ``'medium'``,
            ``'large'`` or a dict of base arguments. Default: None (the base's
            own defaults, which are PVT-Small).""" + CACHE_ARGS_DOC + _PVT_DOC
    arch_zoo = {
        name: dict(
            embed_dims=64,
            num_layers=layers,
            num_heads=[1, 2, 5, 8],
            sr_ratios=[8, 4, 2, 1],
            mlp_ratios=[8, 8, 4, 4])
        for name, layers in dict(
            tiny=[2, 2, 2, 2],
            small=[3, 4, 6, 3],
            medium=[3, 4, 18, 3],
            large=[3, 8, 27, 3]).items()
    }


@MODELS.register_module()
class CachedPVTv2(_CachedPVTMixin, PyramidVisionTransformerV2):
    __doc__ = """PVTv2 (mmdet's ``PyramidVisionTransformerV2``) with a cache
    layer in the attention of its selected encoder layers.

    Base keys are unchanged; a cache layer's are
    ``layers.{stage}.1.{layer}.attn.{name}.*`` (no position embedding).

    Args:
        arch (str | dict, optional): ``'b0'`` ... ``'b5'`` or a dict of base
            arguments. Default: None (the base's defaults: PVTv2-B2 layers
            with embed_dims 64).""" + CACHE_ARGS_DOC + _PVT_DOC
    arch_zoo = {
        name: dict(
            embed_dims=dims,
            num_layers=layers,
            num_heads=[1, 2, 5, 8],
            sr_ratios=[8, 4, 2, 1],
            mlp_ratios=[4, 4, 4, 4] if name == 'b5' else [8, 8, 4, 4])
        for name, dims, layers in [
            ('b0', 32, [2, 2, 2, 2]),
            ('b1', 64, [2, 2, 2, 2]),
            ('b2', 64, [3, 4, 6, 3]),
            ('b3', 64, [3, 4, 18, 3]),
            ('b4', 64, [3, 8, 27, 3]),
            ('b5', 64, [3, 6, 40, 3]),
        ]
    }
