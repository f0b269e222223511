"""Option handling shared by the cached backbones.

Every cached backbone takes the same GRC options (``cache_ratio``,
``cache_lens``, ``cached_stages``, ``cached_layers``, ``grc_mode``,
``reset_cache``, ``grc_cfg``); they are checked here once, with errors that
name the option, before any module is built.
"""
import inspect
from collections import defaultdict
from numbers import Integral, Real
from typing import Dict, List, Sequence, Set, Tuple, Union

import torch.nn as nn
from mmengine.config import ConfigDict

from ..layers import GRCAttention, reset_caches
from ..layers.grc_attention import MODES

CacheLen = Union[int, Tuple[int, int]]

# GRCAttention arguments that the backbone fills in; grc_cfg may not set them.
_RESERVED_GRC_KEYS = ('embed_dims', 'num_heads', 'cache_len', 'cache_ratio',
                      'mode', 'sr_ratio', 'num_extra_tokens')


def bind_base_args(init_fn, kwargs: dict) -> dict:
    """All arguments the base ``__init__`` sees, defaults included, so a
    replacement sub-module is built with exactly the base's settings."""
    bound = inspect.signature(init_fn).bind_partial(None, **kwargs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    args.pop(next(iter(inspect.signature(init_fn).parameters)))  # self
    return args


def merge_arch(arch_zoo: Dict[str, dict], arch, kwargs: dict,
               cls_name: str) -> dict:
    """Arch settings under the explicit kwargs (explicit ones win)."""
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
    merged = {k: (list(v) if isinstance(v, (list, tuple)) else v)
              for k, v in settings.items()}
    merged.update(kwargs)
    return merged


def check_grc_options(cls_name: str, cache_ratio, grc_mode, grc_cfg) -> dict:
    if isinstance(cache_ratio, bool) or not isinstance(cache_ratio, Real) \
            or not 0 < cache_ratio <= 1:
        raise ValueError(
            f'{cls_name}: cache_ratio must be a number in (0, 1], got '
            f'{cache_ratio!r}')
    if grc_mode not in MODES:
        raise ValueError(f'{cls_name}: grc_mode must be one of {MODES}, '
                         f'got {grc_mode!r}')
    grc_cfg = dict(grc_cfg or {})
    bad = sorted(set(grc_cfg) & set(_RESERVED_GRC_KEYS))
    if bad:
        raise ValueError(f'{cls_name}: grc_cfg may not set {bad}; they come '
                         'from the backbone (use cache_ratio, cache_lens, '
                         'grc_mode)')
    return grc_cfg


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
    """Which layers get GRC, as a set of in-stage indices per stage.

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
            for j in range(depth) if s in stages and (
                layers is None or start + j in layers)
        })
        start += depth
    return selected


def check_cache_lens(cls_name: str, cache_lens, num_stages: int,
                     defaults: Sequence[CacheLen]) -> List[CacheLen]:
    """Per-stage cache length: an int, an (h, w) grid, or None (default)."""
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


def check_sr_grid(cls_name: str, stage: int, cache_len: CacheLen,
                  sr_ratio: int) -> None:
    """A spatially reduced cache needs an (h, w) grid of at least sr_ratio."""
    if sr_ratio <= 1:
        return
    if not isinstance(cache_len, tuple):
        raise ValueError(
            f'{cls_name}: stage {stage} reduces its cache by {sr_ratio}, so '
            f'cache_lens[{stage}] must be an (h, w) grid, got {cache_len!r}')
    if min(cache_len) < sr_ratio:
        raise ValueError(
            f'{cls_name}: stage {stage} cache grid {cache_len} is smaller '
            f'than its spatial reduction {sr_ratio}; enlarge cache_lens or '
            f'pretrain_img_size')


def grid_per_stage(img_size: Tuple[int, int],
                   strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Token grid of each stage at ``img_size`` for cumulative strides."""
    grids, s = [], 1
    for stride in strides:
        s *= stride
        grids.append((img_size[0] // s, img_size[1] // s))
    return grids


def init_grc_then(module: nn.Module, base_init) -> None:
    """Initialise GRC modules, then run the base ``init_weights``.

    mmdet's PVT / Swin ``init_weights`` do not call their children's
    ``init_weights``, so the GRC layers are initialised here first. A
    from-scratch base init then re-initialises all Linear layers the same
    way, and a Pretrained base init leaves parameters the checkpoint lacks
    (the GRC ones of an uncached checkpoint) as initialised here.
    """
    grcs = [m for m in module.modules() if isinstance(m, GRCAttention)]
    # Called on the backbone itself (not from a model's init_weights), each
    # GRC init would be an mmengine top-level init and log a report of every
    # parameter; a shared bookkeeping record, as a top-level model gives its
    # sub-modules, keeps it to the model-level report (if any).
    own_record = grcs and not hasattr(module, '_params_init_info')
    if own_record:
        record = defaultdict(dict)
        for p in module.parameters():
            record[p] = dict(
                init_info='', tmp_mean_value=p.data.mean().cpu())
        for m in module.modules():
            m._params_init_info = record
    try:
        for m in grcs:
            m.init_weights()
    finally:
        if own_record:
            for m in module.modules():
                del m._params_init_info
    if isinstance(module.init_cfg, dict) and \
            not isinstance(module.init_cfg, ConfigDict):
        # the bases read init_cfg.checkpoint as an attribute
        module.init_cfg = ConfigDict(module.init_cfg)
    base_init()
    if getattr(module, 'reset_cache', False):
        reset_caches(module)


def make_grc(embed_dims: int, num_heads: int, cache_len: CacheLen,
             cache_ratio: float, grc_mode: str, sr_ratio: int = 1,
             num_extra_tokens: int = 0, **grc_cfg) -> GRCAttention:
    return GRCAttention(
        embed_dims=embed_dims,
        num_heads=num_heads,
        cache_len=cache_len,
        cache_ratio=cache_ratio,
        mode=grc_mode,
        sr_ratio=sr_ratio,
        num_extra_tokens=num_extra_tokens,
        **grc_cfg)

