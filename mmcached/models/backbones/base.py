"""What every cached backbone shares: which attentions get a cache layer,
building those layers from ``cache_cfg``, and initialising them.

A cached backbone is the toolbox's backbone, built as usual, whose selected
attentions then become cached attentions in place
(:func:`~.cached_attention.attach_cache`). The mixin takes the cache
arguments below and asks the backbone only for its cache sites
(:meth:`CachedBackboneMixin.cache_sites`):

- ``cache_cfg`` (dict): the cache layer, built through the registry, one per
  selected attention. Default: ``dict(type='GRCAttention')``, whose own
  defaults are cache ratio 0.5 and the released mode. The backbone fills in
  per attention what it derives (channels, heads, cache length or grid,
  spatial reduction, extra tokens); the rest is the layer's.
- ``cached_stages`` / ``cached_layers``: which attentions are cached;
- ``cache_lens``: the cache length per stage (default: the stage's token
  grid at the pretraining resolution);
- ``reset_cache``: empty every cache after ``init_weights``.
"""
from collections import defaultdict
from numbers import Integral
from typing import Dict, List, NamedTuple, Sequence, Set, Tuple, Union

import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.utils import to_2tuple

from mmcached.utils.init import detached, isolated_rng, loads_checkpoint
from ..layers.cache_layer import (BaseCacheLayer, build_cache_layer,
                                  reset_caches)
from ..layers.cache_sync import launch_after_forward
from .cached_attention import attach_cache, cached_class

CacheLen = Union[int, Tuple[int, int]]

CACHE_ARGS_DOC = """
        cache_cfg (dict): The cache layer of every cached attention, built
            through the registry with the channels, heads, cache length,
            spatial reduction and extra tokens of its site filled in.
            Default: ``dict(type='GRCAttention')`` (cache ratio 0.5,
            released mode).
        cached_stages (Sequence[int], optional): Stages with a cache.
            Default: all. ``[]`` gives the uncached backbone.
        cached_layers (Sequence[int], optional): Layers with a cache, counted
            over the whole backbone. Default: all of ``cached_stages``.
        cache_lens (Sequence, optional): Per stage: None (default: the
            stage's token grid at the pretraining size), an int, or an
            (h, w) grid (needed where the cache is spatially reduced).
        reset_cache (bool): Empty every cache after ``init_weights`` (which
            may load a Pretrained checkpoint), as for detection fine-tuning.
            Caches loaded later (``load_from``, resume) are kept. Default:
            False.
"""


class CacheSites(NamedTuple):
    """Where a backbone's cache layers go.

    attentions: per stage, the host attention of each layer;
    default_lens: per stage, the cache length where ``cache_lens`` says
    None; site: further per-stage lists of site arguments the backbone
    derives (``sr_ratio``, ...), or single values for all stages.
    """
    attentions: Sequence[Sequence[nn.Module]]
    default_lens: Sequence[CacheLen]
    site: dict = {}


class CachedBackboneMixin:
    """Adds cache layers to a toolbox backbone; see the module docstring.

    Takes the cache arguments (keyword-only, documented in
    ``CACHE_ARGS_DOC``), builds the base with the rest, then attaches a
    cache layer to every selected site of :meth:`cache_sites`.
    """

    def __init__(self,
                 *args,
                 cache_cfg: dict = dict(type='GRCAttention'),
                 cached_stages=None,
                 cached_layers=None,
                 cache_lens=None,
                 reset_cache: bool = False,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.add_cache_layers(cache_cfg, cached_stages, cached_layers,
                              cache_lens, reset_cache)

    def cache_sites(self) -> CacheSites:
        """The backbone's attentions, per stage, and what it derives for
        them; called once the base is built."""
        raise NotImplementedError(
            f'{type(self).__name__} must say where its caches go '
            '(cache_sites)')

    def add_cache_layers(self, cache_cfg: dict, cached_stages, cached_layers,
                         cache_lens, reset_cache: bool) -> None:
        """Attach a cache layer built from ``cache_cfg`` to every selected
        site."""
        name = type(self).__name__
        attentions, default_lens, site = self.cache_sites()
        selected = select_layers(name, [len(s) for s in attentions],
                                 cached_stages, cached_layers)
        lens = check_cache_lens(name, cache_lens, default_lens)
        # Built on a stream of their own: the draws of whatever is built
        # after them (neck, heads) are those of the uncached twin.
        with isolated_rng('mmcached.cache_layers.build'):
            self._build_cache_layers(name, attentions, selected, lens,
                                     cache_cfg, site)
        self.cache_cfg = cache_cfg
        self.cache_lens = lens
        self.cached_layer_ids = [sorted(s) for s in selected]
        self.reset_cache = reset_cache
        # Under DDP, the cache updates of a forward leave in one collective
        # when it ends, overlapped with the backward (cache_sync).
        self.register_forward_hook(launch_after_forward)

    @staticmethod
    def _build_cache_layers(name, attentions, selected, lens, cache_cfg,
                            site) -> None:
        for i, hosts in enumerate(attentions):
            for j in sorted(selected[i]):
                host = hosts[j]
                args = dict(cached_class(host).site(host), cache_len=lens[i])
                args.update((k, v[i] if isinstance(v, (list, tuple)) else v)
                            for k, v in site.items())
                try:
                    layer = build_cache_layer(cache_cfg, args)
                except (ValueError, TypeError, KeyError) as e:
                    msg = e.args[0] if e.args else e
                    raise type(e)(f'{name}: stage {i}, layer {j} (cache_lens['
                                  f'{i}]={lens[i]!r}): {msg}') from e
                attach_cache(host, layer)

    def init_weights(self):
        """The base's init (from scratch or a Pretrained checkpoint, which
        may lack cache keys) and each cache layer's own; with
        ``reset_cache`` every cache is emptied afterwards.

        For the same seed, every tensor the base shares with its uncached
        twin gets the same initial value: the cache layers initialise
        themselves on a stream of their own, and a from-scratch base init
        runs with them out of the module tree (the bases' loops over
        ``self.modules()`` would otherwise re-initialise them and shift
        every later draw). A Pretrained base init, which draws nothing
        that survives, sees them, so a cached checkpoint fills them."""
        layers = [m for m in self.modules() if isinstance(m, BaseCacheLayer)]
        with _shared_init_record(self, bool(layers)), \
                isolated_rng('mmcached.cache_layers.init'):
            for m in layers:
                m.init_weights()
        if isinstance(self.init_cfg, dict) and \
                not isinstance(self.init_cfg, ConfigDict):
            # the bases read init_cfg.checkpoint as an attribute
            self.init_cfg = ConfigDict(self.init_cfg)
        if loads_checkpoint(self.init_cfg):
            self.init_base_weights()
        else:
            with detached(self, lambda m: isinstance(m, BaseCacheLayer)):
                self.init_base_weights()
        if self.reset_cache:
            reset_caches(self)

    def init_base_weights(self):
        """The base backbone's own ``init_weights``."""
        super().init_weights()


class _shared_init_record:
    """Called on the backbone itself (not from a model's init_weights), each
    cache layer's init would be an mmengine top-level init and log a report
    of every parameter; a shared bookkeeping record, as a top-level model
    gives its sub-modules, keeps it to the model-level report (if any)."""

    def __init__(self, module: nn.Module, needed: bool):
        self.module = module
        self.own = needed and not hasattr(module, '_params_init_info')

    def __enter__(self):
        if self.own:
            record = defaultdict(dict)
            for p in self.module.parameters():
                record[p] = dict(
                    init_info='', tmp_mean_value=p.data.mean().cpu())
            for m in self.module.modules():
                m._params_init_info = record

    def __exit__(self, *exc):
        if self.own:
            for m in self.module.modules():
                del m._params_init_info


def merge_arch(arch_zoo: Dict[str, dict], arch, kwargs: dict,
               cls_name: str) -> dict:
    """The arch's settings under the explicit kwargs (explicit ones win)."""
    if arch is None:
        return dict(kwargs)
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'{cls_name}: unknown arch {arch!r}, choose '
                             f'from {sorted(arch_zoo)} or pass a dict')
        settings = arch_zoo[arch.lower()]
    elif isinstance(arch, dict):
        settings = arch
    else:
        raise TypeError(f'{cls_name}: arch must be a str, dict or None, '
                        f'got {type(arch).__name__}')
    # the arch's sequences as lists, like the bases' own defaults
    merged = {
        k: list(v) if isinstance(v, (list, tuple)) else v
        for k, v in settings.items()
    }
    return dict(merged, **kwargs)


def _check_index(cls_name, name, idx, n):
    if isinstance(idx, bool) or not isinstance(idx, Integral) \
            or not -n <= idx < n:
        raise ValueError(f'{cls_name}: {name} entries must be integers in '
                         f'[{-n}, {n}), got {idx!r}')
    return int(idx) % n


def _as_index_list(value, name, cls_name):
    if isinstance(value, Integral) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f'{cls_name}: {name} must be an int, a sequence of '
                         f'ints or None, got {value!r}')
    return list(value)


def select_layers(cls_name: str, depths: Sequence[int], cached_stages,
                  cached_layers) -> List[Set[int]]:
    """Which layers get a cache, as a set of in-stage indices per stage.

    ``cached_stages``: stage indices (negative counts from the end), default
    all. ``cached_layers``: layer indices counted over the whole backbone
    (0 .. sum(depths) - 1, negative from the end), default all layers of
    the cached stages. A layer is cached when both select it.
    """
    num_stages, total = len(depths), sum(depths)
    stages = range(num_stages) if cached_stages is None else {
        _check_index(cls_name, 'cached_stages', s, num_stages)
        for s in _as_index_list(cached_stages, 'cached_stages', cls_name)
    }
    layers = None if cached_layers is None else {
        _check_index(cls_name, 'cached_layers', i, total)
        for i in _as_index_list(cached_layers, 'cached_layers', cls_name)
    }
    selected, start = [], 0
    for s, depth in enumerate(depths):
        selected.append({
            j
            for j in range(depth)
            if s in stages and (layers is None or start + j in layers)
        })
        start += depth
    return selected


def check_cache_lens(cls_name: str, cache_lens,
                     defaults: Sequence[CacheLen]) -> List[CacheLen]:
    """Per-stage cache length: an int, an (h, w) grid, or None (default)."""
    num_stages = len(defaults)
    if cache_lens is None:
        return list(defaults)
    if isinstance(cache_lens, (Integral, tuple)) and num_stages == 1 and (
            not isinstance(cache_lens, tuple) or len(cache_lens) == 2
            and all(isinstance(v, Integral) for v in cache_lens)):
        cache_lens = [cache_lens]  # single-stage shorthand (ViT)
    if not isinstance(cache_lens, Sequence) or isinstance(cache_lens, str) \
            or len(cache_lens) != num_stages:
        raise ValueError(f'{cls_name}: cache_lens must be None or a sequence '
                         f'of {num_stages} entries (one per stage), got '
                         f'{cache_lens!r}')
    out = []
    for i, (v, d) in enumerate(zip(cache_lens, defaults)):
        if v is None:
            out.append(d)
        elif isinstance(v, Integral) and not isinstance(v, bool) and v >= 1:
            out.append(int(v))
        elif isinstance(v, Sequence) and len(v) == 2 and all(
                isinstance(u, Integral) and not isinstance(u, bool) and u >= 1
                for u in v):
            out.append((int(v[0]), int(v[1])))
        else:
            raise ValueError(
                f'{cls_name}: cache_lens[{i}] must be None, a positive int '
                f'or an (h, w) pair of positive ints, got {v!r}')
    return out


def stage_grids(img_size, strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Token grid of each stage at ``img_size`` (an int, (s, ) or (h, w))
    for the stages' own strides."""
    h, w = to_2tuple(img_size) if isinstance(
        img_size, int) or len(img_size) != 1 else to_2tuple(img_size[0])
    grids, s = [], 1
    for stride in strides:
        s *= stride
        grids.append((h // s, w // s))
    return grids
