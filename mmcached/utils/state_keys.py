"""A one-line report of a checkpoint that lacks only cache keys.

Loading an uncached checkpoint (ImageNet weights of the plain backbone, a
classifier before its caches existed) into a cached model leaves every key
of the cache layers missing, and they keep their new initialisation: the
expected case. mmengine's ``load_state_dict`` then logs every missing key,
hundreds of lines for a Swin, burying anything else. :func:`quiet_cache_keys`
wraps it: when the only mismatch is missing keys of cache layers, it logs
how many, of which layers, and that they are newly initialised; the full list
goes to the DEBUG level, or with the summary where ``MMCACHED_LIST_KEYS=1``.
Any other mismatch is logged as mmengine logs it.
"""
import functools
import logging
import os
import re
from typing import List, Optional

from mmengine.logging import print_log

LIST_ENV = 'MMCACHED_LIST_KEYS'
_MISSING = 'missing keys in source state_dict: '
_UNEXPECTED = 'unexpected key in source state_dict: '


class _Capture(logging.Logger):
    """A logger that keeps what is logged to it, for a look before it is
    passed on."""

    def __init__(self):
        super().__init__('mmcached.capture')
        self.records = []

    def log(self, level, msg, *args, **kwargs):
        self.records.append((level, msg))


def cache_layer_prefixes(module) -> List[str]:
    """``'name.'`` of every cache layer inside ``module``."""
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(module):
        module = module.module
    # the contract's marker: utils/ (the ground floor) imports no model
    return [
        name + '.' for name, m in module.named_modules()
        if getattr(m, 'is_cache_layer', False)
    ]


def summarise(message: str, prefixes: List[str]) -> Optional[str]:
    """The one-line summary of mmengine's mismatch ``message`` where it has
    only missing keys, all under ``prefixes``; else None."""
    if _UNEXPECTED in message or _MISSING not in message or not prefixes:
        return None
    keys = re.search(re.escape(_MISSING) + r'(.*)', message)[1].split(', ')
    keys = [k.strip() for k in keys if k.strip()]
    layers = [p[:-1] for p in prefixes if any(k.startswith(p) for k in keys)]
    if not keys or not all(k.startswith(tuple(prefixes)) for k in keys):
        return None
    shown = layers if len(layers) <= 3 else layers[:2] + ['...', layers[-1]]
    return (f'the checkpoint has no cache keys: {len(keys)} keys of '
            f'{len(layers)} cache layer{"s" * (len(layers) != 1)} '
            f'({", ".join(shown)}) are newly initialised; every other key '
            f'loaded. {LIST_ENV}=1 (or log_level DEBUG) lists them')


def quiet_cache_keys(load_state_dict):
    """Wrap mmengine's ``load_state_dict`` (see the module docstring)."""
    if getattr(load_state_dict, '_mmcached_quiet', False):
        return load_state_dict

    @functools.wraps(load_state_dict)
    def wrapper(module, state_dict, strict=False, logger=None):
        if strict:
            return load_state_dict(module, state_dict, strict, logger)
        capture = _Capture()
        load_state_dict(module, state_dict, strict, capture)
        for level, msg in capture.records:
            line = summarise(msg, cache_layer_prefixes(module))
            if line is None:
                print_log(msg, logger=logger, level=level)
                continue
            full = os.environ.get(LIST_ENV, '') not in ('', '0')
            print_log(line, logger=logger, level=logging.WARNING)
            print_log(
                msg,
                logger=logger,
                level=logging.WARNING if full else logging.DEBUG)

    wrapper._mmcached_quiet = True
    return wrapper
