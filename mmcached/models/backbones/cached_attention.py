"""Cached attentions: a host backbone's attention that hands its tokens to a
cache layer (see :mod:`mmcached.models.layers.cache_layer`).

One table, :data:`CACHED_ATTENTIONS`, says which host attention class becomes
which cached one, and :func:`attach_cache` turns a host attention into its
cached class in place: the same module, so its settings, weights, dropouts
and drop path are the host's and nothing is rebuilt or re-derived. Its
state-dict keys are unchanged; the cache layer's are added under
``<layer.name>.``.

Each cached class knows one host: how to get its output before dropouts
(for mixing layers), its q / k / v and output projections (for replacing
layers), and where its dropouts go.
"""
from functools import partial

import torch.nn as nn
from mmdet.models.backbones.pvt import SpatialReductionAttention
from mmdet.models.backbones.swin import ShiftWindowMSA
from mmpretrain.models.utils import MultiheadAttention

from ..layers.cache_layer import BaseCacheLayer


class CachedAttentionMixin:
    """What every cached attention shares: holding the cache layer and
    calling it as its kind requires."""

    @property
    def cache_layer(self) -> BaseCacheLayer:
        return getattr(self, self._cache_name)

    def _attach(self, layer: BaseCacheLayer) -> None:
        self._cache_name = layer.name
        self.add_module(layer.name, layer)

    def _cached_forward(self, x, hw_shape, host_forward):
        """The cache layer's output (B, N, D): mixed with ``host_forward()``
        (the host's output before dropouts), or in place of it."""
        layer = self.cache_layer
        if layer.replaces_host:
            return layer(x, hw_shape, self)
        return layer(x, host_forward(), hw_shape)

    @staticmethod
    def site(host: nn.Module) -> dict:
        """What the host says about a cache layer at its site:
        ``embed_dims``, ``num_heads`` (and ``sr_ratio`` where it reduces
        its keys)."""
        raise NotImplementedError


class CachedSpatialReductionAttention(CachedAttentionMixin,
                                      SpatialReductionAttention):
    """PVT / PVTv2's spatial-reduction attention with a cache layer.

    Its proj-dropout and drop path (no weights) move behind the cache layer,
    so they act on the cache layer's output; a replacing layer reads q, k, v
    of the full-resolution tokens (no spatial reduction)."""

    @staticmethod
    def site(host):
        return dict(
            embed_dims=host.embed_dims,
            num_heads=host.num_heads,
            sr_ratio=host.sr_ratio)

    def _attach(self, layer):
        super()._attach(layer)
        self.post_proj_drop, self.proj_drop = self.proj_drop, nn.Identity()
        self.post_dropout_layer, self.dropout_layer = \
            self.dropout_layer, nn.Identity()
        if layer.replaces_host and self.sr_ratio > 1:
            # the key reduction is part of the token mixing being replaced
            del self.sr, self.norm

    def project_qkv(self, x):
        attn = self.attn  # torch's MultiheadAttention: one in-projection
        return nn.functional.linear(x, attn.in_proj_weight,
                                    attn.in_proj_bias).chunk(
                                        3, dim=-1)

    def project_out(self, y):
        return self.attn.out_proj(y)

    def forward(self, x, hw_shape, identity=None):
        """x: (B, N, D) normed tokens on ``hw_shape``; returns
        ``identity + drop_path(proj_drop(out))`` (B, N, D)."""
        if identity is None:
            identity = x
        # With identity=0 and the dropouts moved out, the base forward
        # returns its attention output after the output projection.
        host_forward = partial(super().forward, x, hw_shape, identity=0)
        out = self._cached_forward(x, hw_shape, host_forward)
        return identity + self.post_dropout_layer(self.post_proj_drop(out))


class CachedShiftWindowMSA(CachedAttentionMixin, ShiftWindowMSA):
    """Swin's (shifted) window attention with a cache layer over the whole
    stage. Its drop path moves behind the cache layer (its proj-dropout,
    inside the window attention, stays on the host's output)."""

    @staticmethod
    def site(host):
        return dict(
            embed_dims=host.w_msa.embed_dims, num_heads=host.w_msa.num_heads)

    def _attach(self, layer):
        super()._attach(layer)
        self.drop_path, self.drop = self.drop, nn.Identity()
        if layer.replaces_host:
            # the relative position bias is part of the replaced mixing
            del self.w_msa.relative_position_bias_table
            del self.w_msa.relative_position_index

    def project_qkv(self, x):
        return self.w_msa.qkv(x).chunk(3, dim=-1)

    def project_out(self, y):
        return self.w_msa.proj_drop(self.w_msa.proj(y))

    def forward(self, query, hw_shape):
        """query: (B, H*W, C) normed tokens; returns (B, H*W, C) before the
        block's residual."""
        host_forward = partial(super().forward, query, hw_shape)
        return self.drop_path(
            self._cached_forward(query, hw_shape, host_forward))


class CachedMultiheadAttention(CachedAttentionMixin, MultiheadAttention):
    """mmpretrain's MultiheadAttention (ViT / DeiT) with a cache layer. Its
    proj-dropout and drop path move behind the cache layer; layer scale
    (``gamma1``, weights) stays on the host's output."""

    @staticmethod
    def site(host):
        if host.v_shortcut:
            raise ValueError('a cache layer cannot follow an attention with '
                             'v_shortcut')
        return dict(embed_dims=host.embed_dims, num_heads=host.num_heads)

    def _attach(self, layer):
        super()._attach(layer)
        self.post_proj_drop, self.proj_drop = self.proj_drop, nn.Identity()
        self.post_out_drop, self.out_drop = self.out_drop, nn.Identity()

    def project_qkv(self, x):
        return self.qkv(x).chunk(3, dim=-1)

    def project_out(self, y):
        return self.gamma1(self.proj(y))

    def forward(self, x, hw_shape=None):
        """x: (B, N, D) normed tokens (extra tokens first) and the patch
        grid ``hw_shape`` (None: square); returns (B, N, D) before the
        layer's residual."""
        host_forward = partial(super().forward, x)
        out = self._cached_forward(x, hw_shape, host_forward)
        return self.post_out_drop(self.post_proj_drop(out))


#: host attention class -> its cached class
CACHED_ATTENTIONS = {
    SpatialReductionAttention: CachedSpatialReductionAttention,
    ShiftWindowMSA: CachedShiftWindowMSA,
    MultiheadAttention: CachedMultiheadAttention,
}


def cached_class(host: nn.Module) -> type:
    """The cached class of ``host`` (its exact type: a subclass of a host
    may compute something else)."""
    cls = CACHED_ATTENTIONS.get(type(host))
    if cls is None:
        raise TypeError(
            f'no cached attention for {type(host).__name__}; cached '
            f'attentions exist for '
            f'{sorted(c.__name__ for c in CACHED_ATTENTIONS)}')
    return cls


def attach_cache(host: nn.Module, layer: BaseCacheLayer) -> nn.Module:
    """Turn ``host`` into its cached class, in place, holding ``layer``;
    returns it."""
    cls = cached_class(host)
    host.__class__ = cls
    host._attach(layer)
    return host
