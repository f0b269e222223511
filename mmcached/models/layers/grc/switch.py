"""The one switch of GRC attention's fused path (:mod:`.fused`).

Modelled on how timm switches its fused attention: a module-level default,
an environment variable that overrides it at import, a setter and a context
manager, and one place in the layer that reads it
(``GRCAttention.forward``, through :func:`.fused.applies`).

- default: on (the fused path is measured faster on CPU, docs/grc.md
  "Speed"; where it has not been tested it falls back to the plain path by
  itself, see the top of :mod:`.fused`);
- ``MMCACHED_FUSED_GRC=0`` (or ``1``) in the environment, read once when
  this module is imported;
- :func:`set_fused_grc` (returns the previous value) and the context
  manager :func:`fused_grc`, e.g. ``with fused_grc(False): ...`` runs the
  plain path, the reference.
"""
import contextlib
import os

ENV_VAR = 'MMCACHED_FUSED_GRC'

_TRUE = ('1', 'true', 'on', 'yes')
_FALSE = ('0', 'false', 'off', 'no')


def _parse(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'{ENV_VAR} must be one of {_TRUE + _FALSE}, '
                     f'got {value!r}')


_USE_FUSED_GRC = _parse(os.environ.get(ENV_VAR, '1'))


def use_fused_grc() -> bool:
    """Whether GRC layers take the fused path where it applies."""
    return _USE_FUSED_GRC


def set_fused_grc(enable: bool) -> bool:
    """Switch the fused path on or off; returns the previous setting."""
    global _USE_FUSED_GRC
    previous, _USE_FUSED_GRC = _USE_FUSED_GRC, _parse(enable)
    return previous


@contextlib.contextmanager
def fused_grc(enable: bool):
    """:func:`set_fused_grc` for the duration of a ``with`` block."""
    previous = set_fused_grc(enable)
    try:
        yield
    finally:
        set_fused_grc(previous)
