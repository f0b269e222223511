"""Check that the environment can run mmcached: compiled mmcv ops, mmdet and
mmpretrain models, and mmcached's own registrations.

Exits non-zero with a message saying what failed and what to do.
"""
import argparse
import sys
import traceback

FIX = 'Re-run `bash tools/setup_env.sh` (it rebuilds what is missing).'


def check(name, fn):
    try:
        info = fn()
    except Exception as e:  # noqa: BLE001 - report every failure the same way
        traceback.print_exc()
        print(f'  [FAIL] {name}: {type(e).__name__}: {e}\n         {FIX}')
        return False
    print(f'  [ ok ] {name}' + (f': {info}' if info else ''))
    return True


def _torch():
    import torch
    import torchvision
    return (
        f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
        f'CUDA available: {torch.cuda.is_available()}')


def _mmcv_ops():
    import mmcv
    import torch
    from mmcv.ops import RoIAlign, nms
    from mmcv.utils import ext_loader
    ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2], f'nms kept {keep.tolist()}'
    feats = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 3., 3.]])
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2)(feats, rois)
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
    return f'mmcv {mmcv.__version__}: nms and RoIAlign ran on CPU'


def _mmdet():
    import mmdet
    import mmdet.models  # noqa: F401 - imports every model, and mmcv.ops
    return f'mmdet {mmdet.__version__}'


def _mmpretrain():
    import mmpretrain
    import mmpretrain.models  # noqa: F401
    return f'mmpretrain {mmpretrain.__version__}'


def _mmcached():
    from mmengine.registry import MODELS

    import mmcached
    missing = [n for n in mmcached.REGISTERED_MODELS if MODELS.get(n) is None]
    assert not missing, f'not registered: {missing}'
    return (f'mmcached {mmcached.__version__}, '
            f'{len(mmcached.REGISTERED_MODELS)} models registered')


def main():
    argparse.ArgumentParser(
        description='Check that this environment can run mmcached: compiled '
        'mmcv ops, mmdet and mmpretrain models, mmcached registrations. '
        'Exits 1 with what failed and what to do.').parse_args()
    print(f'Python {sys.version.split()[0]} at {sys.executable}')
    results = [
        check(n, f)
        for n, f in [('torch', _torch), (
            'mmcv compiled ops',
            _mmcv_ops), ('mmdet models',
                         _mmdet), ('mmpretrain models',
                                   _mmpretrain), ('mmcached', _mmcached)]
    ]
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
