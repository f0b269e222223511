import json
import os
import os.path as osp

import numpy as np
import pytest

from mmcached.datasets import (DEFAULT_DIGITS_CANVAS_CFG, DigitsCanvasDataset,
                               digits_split_indices, make_digits_canvas)
from mmcached.datasets.digits_canvas import CLASSES


def _read(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def _decode(ann):
    from pycocotools import mask as mask_utils
    return mask_utils.decode(ann['segmentation']).astype(bool)


def test_images_are_grey_canvases(canvas_root):
    import cv2
    img = cv2.imread(
        osp.join(canvas_root, 'val', '00000.png'), cv2.IMREAD_UNCHANGED)
    size = DEFAULT_DIGITS_CANVAS_CFG['img_size']
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all()
    assert (img[..., 0] == img[..., 2]).all()
    # a dark background with bright strokes
    assert np.median(img) < 100 and img.max() > 150


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_consistent(canvas_root, split):
    coco = _read(canvas_root, split)
    cfg = DEFAULT_DIGITS_CANVAS_CFG
    size = cfg['img_size']
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    assert [c['id'] for c in coco['categories']] == list(range(1, 11))
    anns = coco['annotations']
    per_image = np.bincount([a['image_id'] for a in anns],
                            minlength=len(coco['images']))
    assert per_image.min() >= 1 and per_image.max() <= cfg['max_objects']
    assert per_image.max() > 1  # several digits per canvas
    from sklearn.datasets import load_digits
    targets = load_digits().target
    for img in coco['images']:
        assert (img['width'], img['height']) == (size, size)
    masks = {}
    for a in anns:
        x, y, w, h = a['bbox']
        assert a['iscrowd'] == 0 and 1 <= a['category_id'] <= 10
        assert 0 <= x and 0 <= y and x + w <= size and y + h <= size
        # the strokes of a 20-32 px digit
        assert 3 <= w <= cfg['max_size'] and 8 <= h <= cfg['max_size']
        assert a['segmentation']['size'] == [size, size]
        assert isinstance(a['segmentation']['counts'], str)
        m = _decode(a)
        assert m.sum() == a['area'] > 0
        ys, xs = np.nonzero(m)
        assert [
            xs.min(),
            ys.min(),
            xs.max() - xs.min() + 1,
            ys.max() - ys.min() + 1
        ] == a['bbox']
        # the category is the source digit's label
        assert targets[a['digit_index']] == a['category_id'] - 1
        masks.setdefault(a['image_id'], []).append(m)
    # visible masks of one canvas never overlap
    for ms in masks.values():
        assert (np.sum(ms, axis=0) <= 1).all()


def test_val_canvases_use_only_val_digits(canvas_root):
    train_ids = set(digits_split_indices('train').tolist())
    val_ids = set(digits_split_indices('val').tolist())
    used = {
        s: {a['digit_index']
            for a in _read(canvas_root, s)['annotations']}
        for s in ('train', 'val')
    }
    assert used['val'] and used['val'] <= val_ids
    assert used['train'] and used['train'] <= train_ids


def _dataset(root, pipeline=(), **kwargs):
    return DigitsCanvasDataset(
        data_root=root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=list(pipeline),
        **kwargs)


def test_dataset_with_pipeline_gives_boxes_and_masks(canvas_root):
    from mmdet.structures.mask import BitmapMasks
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ds = _dataset(canvas_root, [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs')
    ])
    assert len(ds) == 8 and ds.metainfo['classes'] == CLASSES
    coco = _read(canvas_root, 'val')
    for i in range(len(ds)):
        out = ds[i]
        gt = out['data_samples'].gt_instances
        assert out['inputs'].shape == (3, 64, 64)
        anns = [
            a for a in coco['annotations']
            if a['image_id'] == out['data_samples'].img_id
        ]
        assert len(gt) == len(anns) > 0
        assert isinstance(gt.masks, BitmapMasks)
        masks = gt.masks.to_ndarray().astype(bool)
        for a, box, m, label in zip(anns, gt.bboxes.tensor.numpy(), masks,
                                    gt.labels.tolist()):
            np.testing.assert_array_equal(m, _decode(a))
            x, y, w, h = a['bbox']
            np.testing.assert_allclose(box, [x, y, x + w, y + h])
            assert label == a['category_id'] - 1


def test_auto_generation(tmp_path):
    root = str(tmp_path / 'gen')
    ds = _dataset(root, generate_cfg=dict(num_train=3, num_val=2))
    assert len(ds) == 2 and osp.isdir(osp.join(root, 'train'))
    os.makedirs(tmp_path / 'empty')  # an empty folder counts as missing
    ds = _dataset(
        str(tmp_path / 'empty'), generate_cfg=dict(num_train=3, num_val=2))
    assert len(ds) == 2


def test_bad_data_root_error(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as e:
        _dataset(missing, auto_generate=False)
    msg = str(e.value)
    assert missing in msg and 'instances_val.json' in msg
    assert 'make_digits_canvas.py' in msg and 'Expected layout' in msg
    assert not osp.exists(missing)
    # A data_root with other contents is an error, never overwritten.
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'keep.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match='annotation file'):
        _dataset(str(other))
    assert os.listdir(other) == ['keep.txt']


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='min_size'):
        make_digits_canvas(str(tmp_path / 'x'), min_size=40, max_size=30)
    assert not os.listdir(tmp_path)
