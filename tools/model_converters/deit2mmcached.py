"""Convert a timm DeiT / ViT checkpoint (``blocks.0.attn.qkv.weight`` ...)
to mmpretrain ``ImageClassifier`` keys for (Cached)ViT.

    python tools/model_converters/deit2mmcached.py deit_small.pth out.pth

Backbone keys get the ``backbone.`` prefix and the head becomes
``head.layers.head.*`` (mmpretrain's ``VisionTransformerClsHead``), so the
file serves as ``load_from`` of a classifier, or as a backbone Pretrained
``init_cfg`` with ``prefix='backbone.'``. GRC keys are absent: a cached
model starts its GRC layers from scratch. Distilled DeiT (``dist_token``) is
not supported: CachedViT has one extra token.
"""
from collections import OrderedDict

from converter_cli import convert_main

# timm name part -> mmpretrain name part, inside ``blocks.{i}.``
_BLOCK_KEYS = (
    ('norm1.', 'ln1.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'),
    ('ls2.gamma', 'ffn.gamma2.weight'),
)


def convert_deit(state_dict: dict, head: bool = True) -> OrderedDict:
    """timm DeiT / ViT keys -> mmpretrain ImageClassifier keys."""
    if 'dist_token' in state_dict:
        raise ValueError('distilled DeiT (dist_token) is not supported; use '
                         'a non-distilled checkpoint')
    if not any(k.startswith('blocks.') for k in state_dict):
        raise ValueError('not a timm ViT / DeiT checkpoint: no "blocks." keys')
    out = OrderedDict()
    for k, v in state_dict.items():
        if k.startswith('head.'):
            if head:
                out['head.layers.head.' + k[len('head.'):]] = v
            continue
        if k in ('cls_token', 'pos_embed'):
            new_k = k
        elif k.startswith('patch_embed.proj.'):
            new_k = 'patch_embed.projection.' + k[len('patch_embed.proj.'):]
        elif k.startswith('norm.'):
            new_k = 'ln1.' + k[len('norm.'):]  # the final norm
        elif k.startswith('blocks.'):
            _, idx, rest = k.split('.', 2)
            for src, dst in _BLOCK_KEYS:
                if rest.startswith(src):
                    rest = dst + rest[len(src):]
                    break
            else:
                raise ValueError(f'unknown timm block key {k!r}')
            new_k = f'layers.{idx}.{rest}'
        else:
            raise ValueError(f'unknown timm key {k!r}')
        out['backbone.' + new_k] = v
    return out


def main(argv=None):
    convert_main(convert_deit, __doc__, 'timm checkpoint (.pth)', argv=argv)


if __name__ == '__main__':
    main()
