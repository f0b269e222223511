"""Converters: checkpoints in the original key layouts (built here from our
own models by the inverse mapping) convert to state dicts that load strictly
into the cached backbones, with only GRC keys missing."""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from mmcached.models.backbones import (CachedPVT, CachedPVTv2, CachedSwin,
                                       CachedViT)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
TOOLS = osp.join(ROOT, 'tools', 'model_converters')


def _convert(load_tool, tool, state_dict, tmp_path):
    """TOOL's command line on STATE_DICT saved as a checkpoint: the state
    dict it wrote, and the file's path."""
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'ours.pth')
    torch.save(dict(model=state_dict), src)
    load_tool(osp.join(TOOLS, tool + '.py')).main([src, dst])
    return torch.load(dst, weights_only=False)['state_dict'], dst


def _backbone(converted):
    """The ``backbone.`` part of a converted classifier, unprefixed."""
    return {
        k[len('backbone.'):]: v
        for k, v in converted.items() if k.startswith('backbone.')
    }


def _assert_equal(model, state_dict):
    sd = model.state_dict()
    for k, v in state_dict.items():
        assert torch.equal(sd[k], v), k


def _assert_loads(model, state_dict):
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not unexpected, unexpected
    assert missing and all('.attn.grc.' in k for k in missing), missing
    sd = model.state_dict()
    for k, v in state_dict.items():
        assert torch.equal(sd[k], v), k


# ---------------------------------------------------------------- PVT
def _pvt_official(model, v2):
    """Our (mmdet) PVT keys -> official whai362/PVT keys."""
    out = {}
    for k, v in model.state_dict().items():
        if '.grc.' in k:
            continue
        s, rest = re.match(r'layers\.(\d+)\.(.*)', k).groups()
        s = int(s) + 1
        if rest.startswith('0.'):
            name = rest[2:].replace('projection', 'proj')
            out[f'patch_embed{s}.{name}'] = v
        elif rest.startswith('2.'):
            out[f'norm{s}.' + rest[2:]] = v
        elif rest == '1.0.pos_embed':
            out[f'pos_embed{s}'] = torch.cat([v[:, :1], v], 1) \
                if s == 4 else v  # v1: a class token slot in stage 4
        else:
            j, sub = re.match(r'1\.(\d+)\.(.*)', rest).groups()
            pre = f'block{s}.{int(j) - (0 if v2 else 1)}.'
            if sub.startswith('attn.attn.in_proj_'):
                kind = sub.rsplit('_', 1)[1]
                d = v.shape[0] // 3
                out[pre + 'attn.q.' + kind] = v[:d]
                out[pre + 'attn.kv.' + kind] = v[d:]
            elif sub.startswith('attn.attn.out_proj.'):
                out[pre + 'attn.proj.' + sub.rsplit('.', 1)[1]] = v
            elif sub.startswith('ffn.layers.'):
                idx, p = re.match(r'ffn\.layers\.(\d+)\.(.*)', sub).groups()
                name = {'0': 'fc1', '1': 'dwconv.dwconv', '3': 'fc2',
                        '4': 'fc2'}[idx] if v2 else \
                    {'0': 'fc1', '3': 'fc2'}[idx]
                if name.startswith('fc') and v.dim() == 4:
                    v = v.flatten(1)
                out[pre + f'mlp.{name}.{p}'] = v
            else:
                out[pre + sub] = v
    if not v2:
        out['cls_token'] = torch.zeros(1, 1, 64)
        out['norm.weight'] = torch.ones(64)
    out['head.weight'] = torch.zeros(10, 64)
    return out


@pytest.mark.parametrize('cls', [CachedPVT, CachedPVTv2])
def test_pvt2mmcached(cls, tmp_path, load_tool):
    cfg = dict(embed_dims=8, num_layers=[2, 1, 1, 1], mlp_ratios=[2] * 4)
    torch.manual_seed(0)
    ref = cls(**cfg)
    ref.init_weights()
    official = _pvt_official(ref, cls is CachedPVTv2)
    assert 'block1.0.attn.q.weight' in official
    converted, dst = _convert(load_tool, 'pvt2mmcached', official, tmp_path)
    _assert_loads(cls(**cfg), converted)
    # also as the Pretrained init of a cached model
    model = cls(**cfg, init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    _assert_equal(model, converted)


# ---------------------------------------------------------------- DeiT
def _timm_deit(model):
    out = {}
    table = [('ln1.', 'norm1.'), ('ln2.', 'norm2.'),
             ('ffn.layers.0.0.', 'mlp.fc1.'), ('ffn.layers.1.', 'mlp.fc2.')]
    for k, v in model.state_dict().items():
        if '.grc.' in k:
            continue
        if k.startswith('layers.'):
            _, i, rest = k.split('.', 2)
            for a, b in table:
                rest = rest.replace(a, b)
            out[f'blocks.{i}.{rest}'] = v
        elif k.startswith('ln1.'):
            out['norm.' + k[4:]] = v
        else:
            out[k.replace('projection', 'proj')] = v
    out['head.weight'] = torch.zeros(10, model.embed_dims)
    out['head.bias'] = torch.zeros(10)
    return out


def test_deit2mmcached(tmp_path, load_tool):
    cfg = dict(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=64,
        patch_size=16)
    torch.manual_seed(0)
    ref = CachedViT(**cfg)
    ref.init_weights()
    timm_sd = _timm_deit(ref)
    assert 'blocks.1.attn.qkv.weight' in timm_sd
    converted, _ = _convert(load_tool, 'deit2mmcached', timm_sd, tmp_path)
    assert converted['head.layers.head.weight'].shape == (10, 32)
    _assert_loads(CachedViT(**cfg), _backbone(converted))
    with pytest.raises(ValueError, match='distilled'):
        load_tool(osp.join(TOOLS, 'deit2mmcached.py')).convert_deit(
            dict(timm_sd, dist_token=None))


# ---------------------------------------------------------------- Swin
def _official_swin(model):
    """Our (mmdet) Swin keys -> official microsoft/Swin-Transformer keys."""

    def unfold_to_official(x):  # inverse of mmdet's reduction reorder
        if x.dim() == 2:
            o, i = x.shape
            return x.reshape(o, i // 4,
                             4)[:, :, [0, 2, 1, 3]].transpose(1,
                                                              2).reshape(o, i)
        i = x.shape[0]
        return x.reshape(i // 4, 4)[:, [0, 2, 1, 3]].transpose(0, 1).reshape(i)

    out = {}
    last = len(model.stages) - 1
    for k, v in model.state_dict().items():
        if '.grc.' in k or re.match(r'norm[0-9]', k) and \
                not k.startswith(f'norm{last}.'):
            continue
        if k.startswith(f'norm{last}.'):
            out['norm.' + k.split('.', 1)[1]] = v
            continue
        k = k.replace('stages.', 'layers.', 1).replace('attn.w_msa.', 'attn.')
        k = k.replace('ffn.layers.0.0.', 'mlp.fc1.').replace(
            'ffn.layers.1.', 'mlp.fc2.').replace('projection', 'proj')
        if 'downsample.' in k:
            v = unfold_to_official(v)
        out[k] = v
    out['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    out['head.weight'] = torch.zeros(10, 8 * model.num_features[0])
    return out


def _timm_swin(official):
    """Official layout -> timm >= 0.9 layout."""
    out = {}
    for k, v in official.items():
        m = re.match(r'layers\.(\d+)\.downsample\.(.*)', k)
        if m:
            k = f'layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}'
        if k.endswith(('relative_position_index', 'attn_mask')):
            continue
        out[k.replace('head.', 'head.fc.')] = v
    return out


@pytest.mark.parametrize('layout', ['official', 'timm'])
def test_swin2mmcached(layout, tmp_path, load_tool):
    cfg = dict(
        embed_dims=16,
        depths=(2, 1, 1, 1),
        num_heads=(1, 2, 4, 8),
        mlp_ratio=2,
        out_indices=(3, ))
    torch.manual_seed(0)
    ref = CachedSwin(**cfg)
    ref.init_weights()
    for p in ref.parameters():  # no symmetric values: the reorder shows
        p.data.copy_(torch.randn_like(p))
    sd = _official_swin(ref)
    if layout == 'timm':
        sd = _timm_swin(sd)
        assert 'layers.1.downsample.reduction.weight' in sd
    converted, dst = _convert(load_tool, 'swin2mmcached', sd, tmp_path)
    assert converted['head.fc.weight'].shape == (10, 128)
    backbone = _backbone(converted)
    model = CachedSwin(**cfg)
    _assert_loads(model, backbone)
    # and through mmdet's Pretrained init
    model = CachedSwin(**cfg, init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    _assert_equal(model, backbone)


@pytest.mark.parametrize('tool',
                         ['pvt2mmcached', 'deit2mmcached', 'swin2mmcached'])
def test_help(tool):
    res = subprocess.run(
        [sys.executable,
         osp.join(TOOLS, tool + '.py'), '--help'],
        capture_output=True,
        text=True,
        cwd=ROOT)
    assert res.returncode == 0 and 'dst' in res.stdout
