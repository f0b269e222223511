"""The contract between a cached backbone and its cache layers.

A cached backbone (``CachedPVT``, ``CachedSwin``, ``CachedViT`` ...) builds
one cache layer per selected attention from ``cache_cfg`` through the
registry, and hands it to that attention. A cache layer knows nothing of the
backbone: it sees tokens, a patch grid and, for one kind, the host's
projections.

Two kinds, told apart by the class attribute ``replaces_host``:

- a *mixing* layer (``replaces_host = False``, e.g. ``GRCAttention``) runs
  after the host's own attention and mixes with its output:
  ``forward(x, o_self, hw_shape) -> out``;
- a *replacing* layer (``replaces_host = True``, e.g. Memory Caching) takes
  the place of the host's token mixing and reuses its projections:
  ``forward(x, hw_shape, host) -> out``, where ``host.project_qkv(x)``
  returns q, k, v (each (B, N, D), head h on channels [h*D/H, (h+1)*D/H))
  and ``host.project_out(y)`` is the host's output projection.

Shapes: x (B, N, D) are the normed tokens the host attention receives, extra
tokens (a class token) first; o_self (B, N, D) is the host's attention output
after its output projection, before its dropouts and residual; hw_shape
(h, w) is the grid of the N - num_extra_tokens patch tokens; out (B, N, D)
goes on to the host's dropouts and residual.

The backbone fills in what it derives from the host and the stage, and only
the arguments the layer's ``__init__`` names (a layer that needs no cache
length does not declare one): ``embed_dims`` (D), ``num_heads`` (H),
``cache_len`` (int, or the (h, w) grid of the stage at the pretraining
resolution), ``sr_ratio`` (spatial reduction of the stage),
``num_extra_tokens``, and, for replacing layers, ``host_projections=True``.
Every other argument comes from ``cache_cfg``, and the layer validates its
arguments itself.

What a layer reports, each a method with a default here, so analysis code
(:mod:`mmcached.analysis`) needs no table of layer kinds:

- ``reset_cache()``: empty whatever the layer keeps across calls;
- ``cache_stats()``: scalars for training curves (``CacheStatsHook``);
- ``cache_maps(*args)``: per-token maps of one recorded forward
  (``tools/analysis/visualize_cache.py``), from the arguments it received.
"""
import inspect
from typing import Dict

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmcached.registry import MODELS
from mmcached.utils.suggest import did_you_mean

#: What a backbone derives per attention site; ``cache_cfg`` may not set it.
SITE_ARGS = ('embed_dims', 'num_heads', 'cache_len', 'sr_ratio',
             'num_extra_tokens', 'host_projections')


class BaseCacheLayer(BaseModule):
    """Base class of cache layers (see the module docstring for the
    contract).

    Class attributes:
        name (str): Attribute under which the host attention holds the
            layer, so its state-dict prefix (``...attn.<name>.*``).
        replaces_host (bool): False for a mixing layer, True for a
            replacing one. Default: False.
        is_cache_layer (bool): True; lets code below the models (the
            checkpoint report in ``mmcached.utils``) recognise a cache layer
            without importing this class.
        init_isolated (bool): True: the layer is built and initialised on a
            random stream of its own (the backbone does it) and its
            ancestors' ``init_cfg`` does not reach it, so a cached model and
            its uncached twin start from the same weights in every tensor
            they share (:mod:`mmcached.utils.init`).
    """

    name: str = 'cache'
    replaces_host: bool = False
    is_cache_layer: bool = True
    init_isolated: bool = True

    def init_weights(self):
        """Without an ``init_cfg``: every ``Linear`` truncated normal (std
        0.02, as the released module and the ViT / PVT families), zero
        biases; other modules keep their own initialisation."""
        super().init_weights()
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def reset_cache(self) -> None:
        """Empty the layer's cache, e.g. before fine-tuning on a new task.
        Layers without state across calls have nothing to do."""

    def cache_stats(self) -> Dict[str, float]:
        """What the layer holds now, as plain floats keyed by a short name
        (logged per layer as ``cache_<key>/<layer>``). Default: nothing."""
        return {}

    def cache_maps(self, *args) -> Dict[str, torch.Tensor]:
        """Maps of one forward on the patch grid, computed from the
        positional arguments that forward received (``(x, o_self,
        hw_shape)`` or ``(x, hw_shape, host)``; run in eval mode, so the
        layer's state is what that forward read). Returns named tensors
        whose leading dims are (B, h, w). Default: nothing."""
        return {}


def cache_layer_types():
    """Names of the registered cache layers (for suggestions)."""
    return [
        name for name, cls in MODELS.module_dict.items()
        if inspect.isclass(cls) and issubclass(cls, BaseCacheLayer)
    ]


def build_cache_layer(cache_cfg: dict, site: dict) -> BaseCacheLayer:
    """Build a cache layer from ``cache_cfg`` (``type`` defaults to
    ``'GRCAttention'``) with the site arguments its ``__init__`` names.

    Raises ValueError when ``cache_cfg`` sets a site argument, TypeError when
    its type is not a cache layer or it has an argument the layer lacks.
    """
    cfg = dict(cache_cfg)
    cfg.setdefault('type', 'GRCAttention')
    fixed = sorted(set(cfg) & set(SITE_ARGS))
    if fixed:
        raise ValueError(
            f'cache_cfg may not set {fixed}: the backbone derives them per '
            'attention (use cache_lens, cache_sr_ratios or the host\'s own '
            'settings)')
    cls = cfg['type']
    if isinstance(cls, str):
        # the current scope's registry, as MODELS.build would search it
        with MODELS.switch_scope_and_registry(None) as registry:
            cls = registry.get(cls)
        if cls is None:
            hint = did_you_mean(cfg['type'], cache_layer_types())
            raise KeyError(
                f'cache_cfg type {cfg["type"]!r} is not a registered module' +
                (hint or '; register it with mmcached.registry.MODELS and '
                 'import it (custom_imports)'))
    if not (inspect.isclass(cls) and issubclass(cls, BaseCacheLayer)):
        raise TypeError(f'cache_cfg type {cfg["type"]!r} is not a cache '
                        'layer (a subclass of BaseCacheLayer)')
    params = inspect.signature(cls.__init__).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if cls.replaces_host:
        site = dict(site, host_projections=True)
    unknown = [k for k in cfg if k not in ('type', '_scope_', *params)]
    if unknown and not takes_all:  # before the build: its error has no hint
        raise TypeError(
            f'cache_cfg: {cls.__name__} has no argument {unknown[0]!r}' +
            did_you_mean(unknown[0],
                         set(params) - {'self', *SITE_ARGS}))
    cfg.update((k, v) for k, v in site.items() if takes_all or k in params)
    cfg['type'] = cls
    try:
        return MODELS.build(cfg)
    except TypeError as e:
        raise TypeError(f'cache_cfg: {e}') from e


def reset_caches(module: nn.Module) -> int:
    """Empty every cache layer inside ``module``; returns how many."""
    layers = [m for m in module.modules() if isinstance(m, BaseCacheLayer)]
    for m in layers:
        m.reset_cache()
    return len(layers)
