"""Cached ViT / DeiT: mmpretrain's VisionTransformer with a cache layer in
its layers' attention."""
import torch
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer, VisionTransformer, resize_pos_embed)

from mmcached.registry import MODELS
from .base import CACHE_ARGS_DOC, CachedBackboneMixin, CacheSites
from .cached_attention import CachedMultiheadAttention


class CachedTransformerEncoderLayer(TransformerEncoderLayer):
    """mmpretrain's encoder layer whose forward also takes the patch grid,
    for its cached attention."""

    def forward(self, x, hw_shape=None):
        x = x + self.attn(self.ln1(x), hw_shape)
        return self.ffn(self.ln2(x), identity=x)


@MODELS.register_module()
class CachedViT(CachedBackboneMixin, VisionTransformer):
    __doc__ = """Vision Transformer / DeiT (mmpretrain's
    ``VisionTransformer``) with a cache layer in the attention of its
    selected layers.

    Base keys are unchanged; a cache layer's are
    ``layers.{layer}.attn.{name}.*``. The class token (if any) is an extra
    token of the cache layer (``num_extra_tokens``); the patch grid of each
    input reaches the cache layers through the forward.

    Args:
        arch (str | dict): As the base: ``'deit-tiny'``, ``'deit-small'``,
            ``'deit-base'``, ... Default: ``'deit-small'`` (the paper's
            ViT-S).""" + CACHE_ARGS_DOC + """
            ViT has one stage: ``cached_stages`` is ``[0]`` or ``[]``, and the
            default cache length is the patches plus extra tokens at
            ``img_size`` (197 for 224 px and patch 16).
        **kwargs: Arguments of mmpretrain's ``VisionTransformer``
            (``img_size``, ``patch_size``, ``out_indices``, ``out_type``,
            ``frozen_stages``, ``drop_path_rate``, ``init_cfg`` ...).
    """

    def __init__(self, arch='deit-small', **kwargs):
        super().__init__(arch=arch, **kwargs)
        for layer in self.layers:
            if isinstance(layer.attn, CachedMultiheadAttention):
                layer.__class__ = CachedTransformerEncoderLayer
        # The base froze in __init__, before the cache layers existed.
        if self.frozen_stages > 0:
            self._freeze_stages()

    def cache_sites(self) -> CacheSites:
        h, w = self.patch_resolution
        # As the released module sizes it: the token count at the
        # pretraining size, patches plus the class token.
        return CacheSites([[layer.attn for layer in self.layers]],
                          [h * w + self.num_extra_tokens],
                          dict(num_extra_tokens=self.num_extra_tokens))

    def forward(self, x):
        """The base's forward, handing the patch grid to the cached layers.
        x: (B, C, H, W) -> tuple of outputs per out index (``out_type``)."""
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))
        outs = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, CachedTransformerEncoderLayer):
                x = layer(x, patch_resolution)
            else:
                x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    def train(self, mode=True):
        """Keep frozen layers in eval mode, so their caches stay frozen too
        (the base only freezes once, in ``__init__``)."""
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self
