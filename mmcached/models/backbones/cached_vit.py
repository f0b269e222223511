"""Cached ViT / DeiT: mmpretrain's VisionTransformer with GRC attention."""
from typing import Optional, Tuple

import torch.nn as nn
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer, VisionTransformer)
from mmpretrain.models.utils import LayerScale, MultiheadAttention

from mmcached.registry import MODELS
from ._utils import (check_cache_lens, check_grc_options,
                     init_grc_then, make_grc, select_layers)


class CachedMultiheadAttention(MultiheadAttention):
    """mmpretrain's MultiheadAttention mixed with GRC attention.

    The patch grid of the current input, which the GRC positional conv
    needs, is set by the owning backbone in ``hw_shape`` before each forward
    (None: a square grid is assumed).

    Args:
        grc (GRCAttention): The cache attention of this layer.
        **kwargs: Arguments of :class:`MultiheadAttention`.
    """

    def __init__(self, *args, grc: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        if self.v_shortcut:
            raise ValueError('CachedMultiheadAttention does not support '
                             'v_shortcut')
        self.grc = grc
        self.hw_shape: Optional[Tuple[int, int]] = None
        # Proj-dropout and drop path must act on the mixed output; they hold
        # no weights, so moving them keeps the base state dict unchanged.
        # ``gamma1`` (layer scale, identity in DeiT) holds weights and stays:
        # with layer scale the mix acts on the scaled self-attention output.
        self.post_proj_drop, self.proj_drop = self.proj_drop, nn.Identity()
        self.post_out_drop, self.out_drop = self.out_drop, nn.Identity()

    def forward(self, x):
        """x: (B, N, D) normed tokens (extra tokens first); returns (B, N, D)
        before the layer's residual."""
        o_self = super().forward(x)
        out = self.grc(x, o_self, self.hw_shape)
        return self.post_out_drop(self.post_proj_drop(out))


@MODELS.register_module()
class CachedViT(VisionTransformer):
    """Vision Transformer / DeiT (mmpretrain's ``VisionTransformer``) with
    GRC attention.

    The ``attn`` of each selected layer becomes a
    :class:`CachedMultiheadAttention`; base keys are unchanged and the GRC
    ones are ``layers.{layer}.attn.grc.*``. The class token (if any) is an
    extra token of the cache attention: it is cached and attends like the
    patch tokens but gets no positional-conv term.

    Args:
        arch (str | dict): As the base: ``'deit-tiny'``, ``'deit-small'``,
            ``'deit-base'``, ... Default: ``'deit-small'`` (the paper's ViT-S).
        cache_ratio (float): Share of channels through the cache. Default 0.5.
        cache_lens (int | Sequence, optional): Cache length of the (single)
            stage: None (default: patches + extra tokens at ``img_size``,
            197 for 224 px and patch 16), an int, or a one-entry sequence.
        cached_stages (Sequence[int], optional): ``(0, )`` or ``()``; ViT has
            one stage. Default: all.
        cached_layers (Sequence[int], optional): Layers with GRC. Default all.
        grc_mode (str): ``'released'`` (default) or ``'paper'``.
        reset_cache (bool): Zero every cache after ``init_weights``. Default:
            False.
        grc_cfg (dict, optional): Extra arguments of ``GRCAttention``.
        **kwargs: Arguments of mmpretrain's ``VisionTransformer``
            (``img_size``, ``patch_size``, ``out_indices``, ``out_type``,
            ``frozen_stages``, ``drop_path_rate``, ``init_cfg`` ...).
    """

    def __init__(self,
                 arch='deit-small',
                 cache_ratio=0.5,
                 cache_lens=None,
                 cached_stages=None,
                 cached_layers=None,
                 grc_mode='released',
                 reset_cache=False,
                 grc_cfg=None,
                 **kwargs):
        name = type(self).__name__
        grc_cfg = check_grc_options(name, cache_ratio, grc_mode, grc_cfg)
        super().__init__(arch=arch, **kwargs)
        selected = select_layers(name, [self.num_layers], cached_stages,
                                 cached_layers)[0]
        h, w = self.patch_resolution
        # The released module sizes the cache with the token count of the
        # first (pretraining-size) input: patches plus the class token.
        (cache_len, ) = check_cache_lens(name, cache_lens, 1,
                                         [h * w + self.num_extra_tokens])
        self.reset_cache = reset_cache
        self.cache_ratio = cache_ratio
        self.grc_mode = grc_mode
        self.cache_lens = [cache_len]
        self.cached_layer_ids = sorted(selected)

        for i, layer in enumerate(self.layers):
            if i not in selected:
                continue
            if not isinstance(layer, TransformerEncoderLayer) or type(
                    layer.attn) is not MultiheadAttention:
                raise TypeError(f'{name}: layer {i} has no plain '
                                'MultiheadAttention to cache')
            old = layer.attn
            grc = make_grc(
                old.embed_dims,
                old.num_heads,
                cache_len,
                cache_ratio,
                grc_mode,
                num_extra_tokens=self.num_extra_tokens,
                **{'qkv_bias': old.qkv.bias is not None, **grc_cfg})
            # Built with the arguments the layer gave its attention, read
            # back from it (layer_cfgs may differ per layer); its dropout
            # modules are taken over as they are.
            attn = CachedMultiheadAttention(
                embed_dims=old.embed_dims,
                num_heads=old.num_heads,
                input_dims=old.input_dims,
                attn_drop=old.attn_drop,
                qkv_bias=old.qkv.bias is not None,
                proj_bias=old.proj.bias is not None,
                layer_scale_init_value=1e-5 if isinstance(
                    old.gamma1, LayerScale) else 0.,
                grc=grc)
            attn.post_proj_drop = old.proj_drop
            attn.post_out_drop = old.out_drop
            missing, unexpected = attn.load_state_dict(
                old.state_dict(), strict=False)
            assert not unexpected and all(
                k.startswith('grc.') for k in missing)
            layer.attn = attn

        # The layers only receive tokens; the patch grid of the current input
        # (for the GRC positional conv, non-square inputs included) is taken
        # from the patch embedding's output as it is computed.
        self.patch_embed.register_forward_hook(self._set_hw_shape)
        # The base froze in __init__, before the GRC modules existed.
        if self.frozen_stages > 0:
            self._freeze_stages()

    def _set_hw_shape(self, module, inputs, outputs):
        hw_shape = tuple(outputs[1])
        for layer in self.layers:
            if isinstance(getattr(layer, 'attn', None),
                          CachedMultiheadAttention):
                layer.attn.hw_shape = hw_shape

    def train(self, mode=True):
        """Keep frozen layers in eval mode, so their caches stay frozen too
        (the base only freezes once, in ``__init__``)."""
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def init_weights(self):
        """Base init (GRC layers are children, initialised by it); with
        ``reset_cache`` every cache is zeroed afterwards."""
        init_grc_then(self, super().init_weights)
