"""Map weights of the authors' released ``GRC_Self_Attention`` onto
:class:`~mmcached.models.layers.GRCAttention` (``mode='released'``).

Released names (one module, relative to its prefix) and ours:

==============================  ========================================
released                        ours
==============================  ========================================
linear_reset, linear_update     cache.gates (rows stacked [reset; update])
linear_add                      cache.candidate
Norm1                           cache.candidate_norm
gr_cache                        cache.memory
attn_mem.q / kv / proj          mem_q / mem_kv / mem_proj
attn_mem.sr / norm              mem_sr / mem_norm
lam                             lam
pos_emb                         pos_conv
attn_self_func.*                the host attention (``host_prefix``)
==============================  ========================================

Only key names and the gate stacking change; no tensor is transposed.
"""
from collections import OrderedDict
from typing import Dict, Optional

import torch

# Released sub-module name -> ours, for the one-to-one renames.
_RENAMES = OrderedDict([
    ('linear_add.', 'cache.candidate.'),
    ('Norm1.', 'cache.candidate_norm.'),
    ('attn_mem.q.', 'mem_q.'),
    ('attn_mem.kv.', 'mem_kv.'),
    ('attn_mem.proj.', 'mem_proj.'),
    ('attn_mem.sr.', 'mem_sr.'),
    ('attn_mem.norm.', 'mem_norm.'),
    ('pos_emb.', 'pos_conv.'),
])
_GATES = ('linear_reset.', 'linear_update.')
_MARKER = 'linear_reset.weight'


def _module_prefixes(state_dict: Dict[str, torch.Tensor]) -> list:
    """Prefixes of every released GRC module in ``state_dict`` (found by
    their reset gate), longest first so nested names cannot be mis-split."""
    prefixes = [k[:-len(_MARKER)] for k in state_dict if k.endswith(_MARKER)]
    return sorted(prefixes, key=len, reverse=True)


def map_released_grc_state_dict(
        state_dict: Dict[str, torch.Tensor],
        grc_prefix: str = '',
        host_prefix: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Rename released GRC weights to ours.

    Works on the state dict of one released module or of a whole model: every
    module is found by its ``linear_reset.weight`` key. For a released module
    at prefix ``P``, its GRC weights go to ``P + grc_prefix + <ours>`` and its
    host attention (``P + 'attn_self_func.' + rest``) to
    ``P + host_prefix + rest``, or is dropped when ``host_prefix`` is None.
    Keys outside any released GRC module are kept as they are.

    The released cache buffer ``gr_cache`` exists only after a forward; when
    absent, ``cache.memory`` is simply not in the result (it stays zeros).

    Args:
        state_dict (dict): Released weights.
        grc_prefix (str): Where our :class:`GRCAttention` sits relative to
            the released module, e.g. ``'grc.'``. Default: ``''``.
        host_prefix (str, optional): Where the host attention's weights go
            relative to the released module, e.g. ``''``.

    Returns:
        OrderedDict: The renamed weights.

    Raises:
        KeyError: a module has one gate of (reset, update) without the other,
            or a key of a released module that has no counterpart.
    """
    out = OrderedDict()
    prefixes = _module_prefixes(state_dict)
    owner = {}
    for key in state_dict:
        owner[key] = next((p for p in prefixes if key.startswith(p)), None)

    gates = {}
    for key, value in state_dict.items():
        prefix = owner[key]
        if prefix is None:
            out[key] = value
            continue
        local = key[len(prefix):]
        if local.startswith(_GATES):
            gates.setdefault(prefix, {})[local] = value
            continue
        if local == 'gr_cache':
            new = 'cache.memory'
        elif local == 'lam':
            new = 'lam'
        elif local.startswith('attn_self_func.'):
            if host_prefix is not None:
                out[prefix + host_prefix + local[len('attn_self_func.'):]] = \
                    value
            continue
        else:
            old = next((o for o in _RENAMES if local.startswith(o)), None)
            if old is None:
                raise KeyError(f'no GRCAttention counterpart for {key!r}')
            new = _RENAMES[old] + local[len(old):]
        out[prefix + grc_prefix + new] = value

    for prefix, parts in gates.items():
        for param in ('weight', 'bias'):
            reset = parts.get(f'linear_reset.{param}')
            update = parts.get(f'linear_update.{param}')
            if reset is None and update is None:
                continue
            if reset is None or update is None:
                raise KeyError(f'{prefix!r}: linear_reset.{param} and '
                               f'linear_update.{param} must come together')
            # Our fused gate Linear emits [reset, update] along its outputs.
            out[prefix + grc_prefix + f'cache.gates.{param}'] = torch.cat(
                [reset, update], dim=0)
    return out
