"""Convert an official (microsoft/Swin-Transformer) or timm Swin checkpoint
to the keys of mmdet's SwinTransformer, which CachedSwin shares.

    python tools/model_converters/swin2mmcached.py swin_tiny.pth out.pth

Keys get the ``backbone.`` prefix, as mmdet's Swin Pretrained ``init_cfg``
requires (it keeps only such keys). The final norm becomes the norm of the
last stage's output (``norm{last}``), which makes a GAP + linear classifier
on the last stage identical to the original model; the head becomes
``head.fc.*`` (mmpretrain's ``LinearClsHead``). timm >= 0.9 checkpoints
(downsampling at the start of a stage, no relative position index) are
recognised and brought to the official layout first. GRC keys are absent.
"""
import re
from collections import OrderedDict

import torch
from converter_cli import convert_main


def _relative_position_index(window: int) -> torch.Tensor:
    """The (deterministic) index buffer of a window of ``window`` tokens."""
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window), torch.arange(window),
            indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + \
        (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def _to_official(state_dict: dict) -> OrderedDict:
    """timm >= 0.9 layout -> official layout; others pass through."""
    keys = list(state_dict)
    timm_new = not any(k.startswith('layers.0.downsample.') for k in keys) \
        and any(re.match(r'layers\.[1-9]\d*\.downsample\.', k) for k in keys)
    out = OrderedDict()
    for k, v in state_dict.items():
        if k.endswith('attn_mask'):
            continue  # a buffer the model computes
        m = re.match(r'layers\.(\d+)\.downsample\.(.*)', k)
        if timm_new and m:
            k = f'layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
        elif k.startswith('head.fc.'):
            k = 'head.' + k[len('head.fc.'):]
        out[k] = v
    for k, v in list(out.items()):
        if k.endswith('relative_position_bias_table'):
            index_key = k.replace('bias_table', 'index')
            if index_key not in out:
                out[index_key] = _relative_position_index(
                    (int(round(v.shape[0]**0.5)) + 1) // 2)
    return out


def convert_swin(state_dict: dict, head: bool = True) -> OrderedDict:
    """Official / timm Swin keys -> mmdet Swin keys with ``backbone.``."""
    from mmdet.models.backbones.swin import swin_converter
    if not any(k.startswith('layers.0.blocks.') for k in state_dict):
        raise ValueError('not an official / timm Swin checkpoint: no '
                         '"layers.0.blocks." keys')
    state_dict = _to_official(state_dict)
    last = max(
        int(k.split('.')[1]) for k in state_dict if k.startswith('layers.'))
    out = OrderedDict()
    for k, v in swin_converter(state_dict).items():
        if k.startswith('backbone.norm.'):
            k = f'backbone.norm{last}.' + k[len('backbone.norm.'):]
        out[k] = v
    if head:
        for k, v in state_dict.items():
            if k.startswith('head.'):
                out['head.fc.' + k[len('head.'):]] = v
    return out


def main(argv=None):
    convert_main(
        convert_swin, __doc__, 'official or timm checkpoint (.pth)', argv=argv)


if __name__ == '__main__':
    main()
