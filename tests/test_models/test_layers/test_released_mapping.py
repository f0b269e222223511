"""map_released_grc_state_dict on hand-made released key sets (the released
code itself is not needed)."""
from collections import OrderedDict

import pytest
import torch

from mmcached.models.layers.grc.grc_attention import GRCAttention
from mmcached.models.layers.grc.released_mapping import \
    map_released_grc_state_dict


def _released_keys(dim=16,
                   heads=2,
                   n=16,
                   sr=2,
                   bias=True,
                   cache=True,
                   prefix=''):
    """A released GRC_Self_Attention state dict (PVT host), filled with
    distinct values so that every copy can be traced."""
    d = dim // 2
    shapes = OrderedDict([
        ('attn_self_func.q.weight', (dim, dim)),
        ('attn_self_func.kv.weight', (2 * dim, dim)),
        ('attn_self_func.proj.weight', (dim, dim)),
        ('attn_self_func.proj.bias', (dim, )),
        ('attn_mem.q.weight', (d, d)),
        ('attn_mem.kv.weight', (2 * d, d)),
        ('attn_mem.proj.weight', (d, d)),
        ('attn_mem.proj.bias', (d, )),
        ('linear_reset.weight', (d, 2 * d)),
        ('linear_reset.bias', (d, )),
        ('linear_update.weight', (d, 2 * d)),
        ('linear_update.bias', (d, )),
        ('linear_add.weight', (d, 2 * d)),
        ('linear_add.bias', (d, )),
        ('Norm1.weight', (d, )),
        ('Norm1.bias', (d, )),
        ('lam', (heads, )),
        ('pos_emb.weight', (dim, 2, 3, 3)),
        ('pos_emb.bias', (dim, )),
    ])
    if bias:
        shapes['attn_mem.q.bias'] = (d, )
        shapes['attn_mem.kv.bias'] = (2 * d, )
    if sr > 1:
        shapes['attn_mem.sr.weight'] = (d, d, sr, sr)
        shapes['attn_mem.sr.bias'] = (d, )
        shapes['attn_mem.norm.weight'] = (d, )
        shapes['attn_mem.norm.bias'] = (d, )
    if cache:
        shapes['gr_cache'] = (1, n, d)
    return OrderedDict((prefix + k, torch.full(s, float(i)))
                       for i, (k, s) in enumerate(shapes.items()))


def test_renames_and_gate_stacking():
    sd = _released_keys()
    out = map_released_grc_state_dict(sd)
    assert torch.equal(
        out['cache.gates.weight'],
        torch.cat([sd['linear_reset.weight'], sd['linear_update.weight']]))
    assert torch.equal(out['cache.gates.bias'][:8], sd['linear_reset.bias'])
    assert torch.equal(out['cache.gates.bias'][8:], sd['linear_update.bias'])
    pairs = {
        'cache.candidate.weight': 'linear_add.weight',
        'cache.candidate_norm.bias': 'Norm1.bias',
        'cache.memory': 'gr_cache',
        'mem_q.weight': 'attn_mem.q.weight',
        'mem_kv.bias': 'attn_mem.kv.bias',
        'mem_proj.weight': 'attn_mem.proj.weight',
        'mem_sr.weight': 'attn_mem.sr.weight',
        'mem_norm.bias': 'attn_mem.norm.bias',
        'lam': 'lam',
        'pos_conv.weight': 'pos_emb.weight',
    }
    for ours, theirs in pairs.items():
        assert out[ours] is sd[theirs], ours
    # the host attention is dropped unless asked for
    assert not any('attn_self_func' in k or k.startswith(('q.', 'kv.'))
                   for k in out)


@pytest.mark.parametrize('sr,bias', [(2, True), (1, False)])
def test_loads_strictly_into_grc_attention(sr, bias):
    m = GRCAttention(
        16,
        2,
        cache_len=(4, 4) if sr > 1 else 16,
        sr_ratio=sr,
        qkv_bias=bias,
        mode='released')
    out = map_released_grc_state_dict(_released_keys(sr=sr, bias=bias))
    m.load_state_dict(out, strict=True)
    assert torch.equal(m.lam, out['lam'])
    # without gr_cache (the released module never ran) only the cache is
    # missing and stays zeros
    out = map_released_grc_state_dict(
        _released_keys(sr=sr, bias=bias, cache=False))
    m.reset_cache()
    missing, unexpected = m.load_state_dict(out, strict=False)
    assert missing == ['cache.memory'] and unexpected == []
    assert not m.cache.memory.any()


def test_whole_model_prefixes_and_host():
    sd = OrderedDict()
    sd['patch_embed.proj.weight'] = torch.zeros(3)
    sd.update(_released_keys(prefix='block1.0.attn.'))
    sd.update(_released_keys(prefix='block1.10.attn.', sr=1))
    sd['block1.0.mlp.fc1.weight'] = torch.ones(2)
    out = map_released_grc_state_dict(sd, grc_prefix='grc.', host_prefix='')
    # unrelated keys untouched
    assert out['patch_embed.proj.weight'] is sd['patch_embed.proj.weight']
    assert out['block1.0.mlp.fc1.weight'] is sd['block1.0.mlp.fc1.weight']
    for p in ('block1.0.attn.', 'block1.10.attn.'):
        assert out[p + 'grc.cache.gates.weight'].shape == (16, 16)
        assert out[p + 'q.weight'] is sd[p + 'attn_self_func.q.weight']
        assert out[p + 'proj.bias'] is sd[p + 'attn_self_func.proj.bias']
    assert 'block1.0.attn.grc.mem_sr.weight' in out
    assert 'block1.10.attn.grc.mem_sr.weight' not in out
    assert not any('linear_' in k or 'attn_self_func' in k for k in out)
    n_in = len(sd)
    # 2 gate pairs fused into one key each (weight and bias): -4 keys
    assert len(out) == n_in - 4


def test_broken_key_sets_raise():
    sd = _released_keys()
    del sd['linear_update.bias']
    with pytest.raises(KeyError, match='linear_update.bias'):
        map_released_grc_state_dict(sd)
    sd = _released_keys()
    sd['mystery.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='mystery'):
        map_released_grc_state_dict(sd)
