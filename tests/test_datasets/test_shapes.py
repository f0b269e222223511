import json
import os
import os.path as osp

import numpy as np
import pytest

from mmcached.datasets import CheckedCocoDataset, ShapesDataset
from mmcached.datasets.shapes import CLASSES


def _read(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def test_annotations_are_polygons_inside_boxes(shapes_root):
    coco = _read(shapes_root, 'train')
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    anns = coco['annotations']
    assert len(anns) >= 12
    per_image = np.bincount([a['image_id'] for a in anns])
    assert per_image.max() > 1  # several objects per image
    sizes = [max(a['bbox'][2:]) for a in anns]
    assert min(sizes) < 30 < max(sizes)  # several sizes
    assert {a['category_id'] for a in anns} == {1, 2, 3}
    for a in anns:
        x, y, w, h = a['bbox']
        assert w > 0 and h > 0 and a['area'] > 0 and a['iscrowd'] == 0
        assert isinstance(a['segmentation'], list) and a['segmentation']
        for poly in a['segmentation']:
            assert len(poly) >= 6 and len(poly) % 2 == 0
            xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
            assert xs.min() >= x and xs.max() <= x + w
            assert ys.min() >= y and ys.max() <= y + h


def test_overlaps_exist():
    # With the default settings, some boxes of an image overlap.
    import tempfile

    from mmcached.datasets.shapes import make_split
    with tempfile.TemporaryDirectory() as d:
        coco = make_split(d, 'val', 30, 128, 14, 56, 4, 0.6, 0)
    boxes = {}
    for a in coco['annotations']:
        boxes.setdefault(a['image_id'], []).append(a['bbox'])
    overlapping = 0
    for bs in boxes.values():
        for i in range(len(bs)):
            for j in range(i + 1, len(bs)):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = bs[i], bs[j]
                if min(x1 + w1, x2 + w2) > max(x1, x2) and \
                        min(y1 + h1, y2 + h2) > max(y1, y2):
                    overlapping += 1
    assert overlapping > 0


def _dataset(cls, root, **kwargs):
    return cls(
        data_root=root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=[],
        **kwargs)


def test_dataset_loads(shapes_root):
    ds = _dataset(ShapesDataset, shapes_root)
    assert len(ds) == 6
    assert ds.metainfo['classes'] == CLASSES
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path'])
    assert info['instances'] and 'mask' in info['instances'][0]


def test_auto_generation(tmp_path):
    root = str(tmp_path / 'gen')
    ds = _dataset(
        ShapesDataset, root, generate_cfg=dict(num_train=3, num_val=2))
    assert len(ds) == 2 and osp.isdir(osp.join(root, 'train'))
    # An empty folder counts as missing too.
    os.makedirs(tmp_path / 'empty')
    ds = _dataset(
        ShapesDataset,
        str(tmp_path / 'empty'),
        generate_cfg=dict(num_train=3, num_val=2))
    assert len(ds) == 2
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.shapes')]


def test_missing_data_root_error(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as e:
        _dataset(ShapesDataset, missing, auto_generate=False)
    msg = str(e.value)
    assert missing in msg and 'instances_val.json' in msg
    assert 'make_shapes.py' in msg
    assert not osp.exists(missing)

    with pytest.raises(FileNotFoundError) as e:
        CheckedCocoDataset(
            data_root=missing,
            ann_file='annotations/instances_val2017.json',
            data_prefix=dict(img='val2017/'),
            pipeline=[])
    msg = str(e.value)
    assert missing in msg and 'instances_val2017.json' in msg
    assert 'train2017' in msg and 'Expected layout' in msg


def test_missing_images_error(shapes_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='image folder'):
        CheckedCocoDataset(
            data_root=shapes_root,
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='nope/'),
            pipeline=[])
