"""CheckedImageNet: a missing data root names the path and the layout."""
import numpy as np
import pytest
from PIL import Image

from mmcached.datasets import CheckedImageNet


def test_missing_root_names_path_and_layout(tmp_path):
    root = str(tmp_path / 'imagenet')
    with pytest.raises(FileNotFoundError) as e:
        CheckedImageNet(data_root=root, split='train')
    msg = str(e.value)
    assert root in msg and 'train' in msg
    assert 'n01440764' in msg and 'data_root' in msg


def test_present_root_loads(tmp_path):
    for cls in ('n0', 'n1'):
        d = tmp_path / 'train' / cls
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / 'a.png')
    ds = CheckedImageNet(
        data_root=str(tmp_path),
        split='train',
        metainfo=dict(classes=('n0', 'n1')))
    assert len(ds) == 2
    assert sorted(ds.get_gt_labels().tolist()) == [0, 1]
