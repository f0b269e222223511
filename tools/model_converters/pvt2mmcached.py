"""Convert an official PVT / PVTv2 checkpoint (whai362/PVT keys such as
``block1.0.attn.q.weight``) to the keys of mmdet's PVT backbones, which
CachedPVT / CachedPVTv2 share (the GRC keys are absent: a cached model
initialised from the result starts its GRC layers from scratch).

    python tools/model_converters/pvt2mmcached.py pvt_tiny.pth out.pth

The result is a backbone state dict without prefix, as the Pretrained
``init_cfg`` of mmdet's PVT loads it (``--prefix backbone.`` for a whole
model's ``load_from``). The classification head, final norm and class token
of PVT v1 are dropped (mmdet's ``pvt_convert``).
"""
from collections import OrderedDict

from converter_cli import convert_main


def convert_pvt(state_dict: dict, prefix: str = '') -> OrderedDict:
    """Official PVT / PVTv2 keys -> mmdet / mmcached PVT keys."""
    from mmdet.models.backbones.pvt import pvt_convert
    if not any(k.startswith(('block1.', 'patch_embed1.')) for k in state_dict):
        raise ValueError('not an official PVT / PVTv2 checkpoint: no '
                         '"block1." or "patch_embed1." keys')
    return OrderedDict(
        (prefix + k, v) for k, v in pvt_convert(state_dict).items())


def main(argv=None):
    convert_main(
        convert_pvt,
        __doc__,
        'official checkpoint (.pth)',
        prefix=True,
        argv=argv)


if __name__ == '__main__':
    main()
