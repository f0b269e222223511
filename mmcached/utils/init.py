"""Initialising part of a model without moving the rest of its random draws.

Two models that differ by some added modules (a cached backbone and its
uncached twin) should start from the same weights for the same seed in every
tensor they share. Two things break that with plain PyTorch / mmengine: an
added module draws from the global generator when it is built and when it is
initialised, and an ancestor's initialisation (``init_cfg`` such as
``dict(type='TruncNormal', layer='Linear')``, or a backbone's own loop over
``self.modules()``) walks into it, so every draw after it is shifted.

- :func:`isolated_rng`: run a block on a generator of its own, seeded from
  the global one *without drawing from it*; the global state is as before
  afterwards.
- :func:`detached`: hide some sub-modules from the module tree for the
  duration of a block.
- Modules whose class sets ``init_isolated = True`` are skipped by their
  ancestors' ``init_cfg`` initialisers (:func:`isolating_initialize`, a
  wrapper of mmengine's ``initialize`` installed by :mod:`.compat`); they
  initialise themselves.
"""
import contextlib
import functools
import hashlib
from typing import Callable, Iterator

import torch
import torch.nn as nn


@contextlib.contextmanager
def isolated_rng(tag: str) -> Iterator[None]:
    """Run the block on the CPU generator (modules are built on the CPU)
    reseeded from a hash of its current state and ``tag``; restore that
    state afterwards.

    The seed depends only on the global state on entry, so the block's draws
    are reproducible (same seed, same code -> same values) while the draws
    made after the block are exactly those that would have been made
    without it."""
    state = torch.random.get_rng_state()
    digest = hashlib.sha256(state.numpy().tobytes() + tag.encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int.from_bytes(digest[:8], 'little'))
        yield


@contextlib.contextmanager
def detached(module: nn.Module, predicate: Callable[[nn.Module],
                                                    bool]) -> Iterator[list]:
    """Remove every descendant of ``module`` for which ``predicate`` holds
    (not its own descendants: the whole sub-tree goes) from the module tree
    for the duration of the block; yields the removed modules."""
    removed = []  # (parent, name, child) in tree order

    def visit(parent):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if predicate(child):
                removed.append((parent, name, child))
                parent._modules[name] = None
            else:
                visit(child)

    visit(module)
    try:
        yield [child for _, _, child in removed]
    finally:
        for parent, name, child in removed:
            parent._modules[name] = child


def is_init_isolated(module: nn.Module) -> bool:
    return bool(getattr(module, 'init_isolated', False))


def loads_checkpoint(init_cfg) -> bool:
    """Whether ``init_cfg`` (a dict, a list of them or None) includes a
    ``Pretrained`` init."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        kind = cfg.get('type') if isinstance(cfg, dict) else None
        if kind == 'Pretrained' or getattr(kind, '__name__',
                                           None) == 'PretrainedInit':
            return True
    return False


def isolating_initialize(initialize: Callable) -> Callable:
    """Wrap mmengine's ``initialize(module, init_cfg)`` (what
    ``BaseModule.init_weights`` applies its non-Pretrained ``init_cfg``
    with) so that it does not reach ``init_isolated`` descendants."""
    if getattr(initialize, '_mmcached_isolating', False):
        return initialize

    @functools.wraps(initialize)
    def wrapper(module, init_cfg):
        if loads_checkpoint(init_cfg):
            # a checkpoint fills isolated modules too (and draws nothing)
            return initialize(module, init_cfg)
        with detached(module, is_init_isolated):
            return initialize(module, init_cfg)

    wrapper._mmcached_isolating = True
    return wrapper
